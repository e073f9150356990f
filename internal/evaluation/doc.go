// Package evaluation scores a binary classifier against labelled cases:
// accuracy, sensitivity, specificity, precision, F1, ROC AUC and the
// confusion matrix. It owns the arithmetic only; `radflow eval` feeds it the
// model's probabilities and the folder labels.
package evaluation

package evaluation

import (
	"errors"
	"math"
	"sort"
)

// ErrNoCases: Score was given no cases, or only one class (ROC AUC undefined).
var ErrNoCases = errors.New("evaluation: no cases")

// Case is one labelled prediction: Positive is the ground truth, Score the
// model's probability of the positive label in [0,1].
type Case struct {
	Positive bool
	Score    float64
}

// Metrics are the figures `radflow eval` prints. Ratios are in [0,1];
// a ratio whose denominator is zero is NaN (encoded as null in JSON by the caller).
type Metrics struct {
	N           int     `json:"n"`
	Accuracy    float64 `json:"accuracy"`
	Sensitivity float64 `json:"sensitivity"` // recall of the positive label, TP/(TP+FN)
	Specificity float64 `json:"specificity"` // TN/(TN+FP)
	Precision   float64 `json:"precision"`   // TP/(TP+FP)
	F1          float64 `json:"f1"`
	ROCAUC      float64 `json:"roc_auc"` // NaN when only one class is present
	// ConfusionMatrix is [[TN, FP], [FN, TP]]: rows are the truth (negative,
	// positive), columns the prediction (negative, positive).
	ConfusionMatrix [2][2]int `json:"confusion_matrix"`
}

// Score computes Metrics, predicting positive when Score >= threshold.
// ROC AUC is the Mann-Whitney U statistic, ties counted one half.
// errors: ErrNoCases when cases is empty.
func Score(cases []Case, threshold float64) (Metrics, error) {
	if len(cases) == 0 {
		return Metrics{}, ErrNoCases
	}
	var m Metrics
	m.N = len(cases)
	for _, c := range cases {
		pred := c.Score >= threshold
		m.ConfusionMatrix[b2i(c.Positive)][b2i(pred)]++
	}
	tn, fp := float64(m.ConfusionMatrix[0][0]), float64(m.ConfusionMatrix[0][1])
	fn, tp := float64(m.ConfusionMatrix[1][0]), float64(m.ConfusionMatrix[1][1])
	m.Accuracy = (tp + tn) / float64(m.N)
	m.Sensitivity = ratio(tp, tp+fn)
	m.Specificity = ratio(tn, tn+fp)
	m.Precision = ratio(tp, tp+fp)
	m.F1 = ratio(2*tp, 2*tp+fp+fn)
	m.ROCAUC = rocAUC(cases)
	return m, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// rocAUC ranks all scores (average ranks for ties) and returns
// (R_pos - n_pos(n_pos+1)/2) / (n_pos n_neg).
func rocAUC(cases []Case) float64 {
	idx := make([]int, len(cases))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return cases[idx[a]].Score < cases[idx[b]].Score })
	var rankPos float64
	var nPos, nNeg float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && cases[idx[j]].Score == cases[idx[i]].Score {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j averaged
		for k := i; k < j; k++ {
			if cases[idx[k]].Positive {
				rankPos += avg
			}
		}
		i = j
	}
	for _, c := range cases {
		if c.Positive {
			nPos++
		} else {
			nNeg++
		}
	}
	if nPos == 0 || nNeg == 0 {
		return math.NaN()
	}
	return (rankPos - nPos*(nPos+1)/2) / (nPos * nNeg)
}

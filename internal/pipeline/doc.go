// Package pipeline is the one place where an instance becomes an AI result:
// decode (package pixel) → preprocess (transform, as the model's config
// declares) → infer (inference, one reused session per model version) →
// interpret (labels, probabilities, decision threshold). `radflow infer`,
// `radflow eval` and the service's job handler all go through it, so the
// three cannot drift apart.
//
// It owns: the order of the stages, per-stage timings, session reuse. It
// does not own: parsing, decoding, preprocessing arithmetic, ORT (each in
// its package), storage or queues.
package pipeline

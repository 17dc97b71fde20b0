// Package metrics scores predictions the way the SHLPT reference does, and
// the way the benchmarks' official scripts do where the reference departs
// from them: exact-match accuracy after text normalization, MultiRC's F1
// over answer options, SQuAD v2 F1 and EM, and the lifelong-learning
// summaries (average, backward and forward transfer, forgetting, mean ±
// standard deviation over seeds).
//
// Scores are fractions in [0, 1]; the lifelong summaries work on whatever
// unit the matrix holds.
package metrics

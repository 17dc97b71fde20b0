// Package tasks turns the task files of the SHLPT lifelong-learning
// benchmarks into text-to-text examples: it reads the original file formats,
// applies the reference code's templates and label words, draws the few-shot
// train, valid and test sets for a seed, and names the task sequences.
//
// A training loop needs three calls:
//
//	t, err := tasks.Lookup("cb")
//	d, err := tasks.Load(t, tasks.Layout(root, t), seed, tasks.DefaultConfig())
//	enc, err := tasks.Encode(tok, t, d.Train[i])
//
// The text-level API (Load, Example) knows nothing of tokenizers; Encode takes
// any Tokenizer. docs/data.md describes the formats, the sampling algorithm
// and where shlpt-vk departs from the reference code by default.
package tasks

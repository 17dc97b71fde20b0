package tasks

import (
	"os"
	"path/filepath"
)

// Files says where a task's data is and how it is written.
type Files struct {
	Format Format
	// Train is the file that train (and, without Valid, valid) examples
	// are drawn from; Test the file test examples are drawn from.
	Train, Test string
	// Valid, when set, is the file valid examples are drawn from (LFPT5
	// ships one); otherwise valid comes from Train, as in the reference.
	Valid string
	// TrainRows and TestRows, when set, name NumPy .npy files of 0-based
	// row indices: only those rows of Train and Test are used, in that
	// order. The reference filters Yahoo this way with ProgressivePrompts'
	// good_id_yahoo files.
	TrainRows, TestRows string
}

// Layout returns the files of task t in the SHLPT dataset layout under
// root, e.g. root/CB/train.jsonl and root/CB/test.jsonl. For Yahoo it adds
// the row filters root/good_id_yahoo/good_id_yahoo_{train,test}2.npy when
// they exist.
func Layout(root string, t *Task) Files {
	dir := filepath.Join(root, t.Dir)
	ext := t.Format.ext()
	f := Files{Format: t.Format, Train: filepath.Join(dir, "train"+ext), Test: filepath.Join(dir, "test"+ext)}
	if t.Name == "yahoo" {
		train := filepath.Join(root, "good_id_yahoo", "good_id_yahoo_train2.npy")
		test := filepath.Join(root, "good_id_yahoo", "good_id_yahoo_test2.npy")
		if exists(train) && exists(test) {
			f.TrainRows, f.TestRows = train, test
		}
	}
	return f
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

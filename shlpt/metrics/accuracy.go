package metrics

import "fmt"

// ExactMatch reports whether pred and gold are equal after Normalize.
func ExactMatch(pred, gold string) bool { return Normalize(pred) == Normalize(gold) }

// Accuracy is the fraction of predictions that ExactMatch their gold text.
func Accuracy(preds, golds []string) (float64, error) {
	if err := sameLen(len(preds), len(golds)); err != nil {
		return 0, err
	}
	hits := 0
	for i := range preds {
		if ExactMatch(preds[i], golds[i]) {
			hits++
		}
	}
	return float64(hits) / float64(len(preds)), nil
}

func sameLen(np, ng int) error {
	if np != ng {
		return fmt.Errorf("metrics: %d predictions for %d examples", np, ng)
	}
	if np == 0 {
		return fmt.Errorf("metrics: no examples to score")
	}
	return nil
}

package metrics

// SQuADScores are SQuAD v2's scores.
type SQuADScores struct {
	// EM and F1 follow the official SQuAD v2 script: the best score over
	// every gold answer whose normalized text is not empty, or against ""
	// when there is none (unanswerable).
	EM, F1 float64
	// FirstEM and FirstF1 are the reference's variant: scored against the
	// first gold answer only ("" when unanswerable).
	FirstEM, FirstF1 float64
}

// SQuAD scores predictions against each question's gold answers
// (tasks.Example.Answers; empty when unanswerable).
func SQuAD(preds []string, answers [][]string) (SQuADScores, error) {
	if err := sameLen(len(preds), len(answers)); err != nil {
		return SQuADScores{}, err
	}
	var s SQuADScores
	for i, p := range preds {
		golds := officialGolds(answers[i])
		var em, f1 float64
		for _, g := range golds {
			if ExactMatch(p, g) {
				em = 1
			}
			f1 = max(f1, TokenF1(p, g))
		}
		s.EM += em
		s.F1 += f1
		first := ""
		if len(answers[i]) > 0 {
			first = answers[i][0]
		}
		if ExactMatch(p, first) {
			s.FirstEM++
		}
		s.FirstF1 += TokenF1(p, first)
	}
	n := float64(len(preds))
	s.EM, s.F1, s.FirstEM, s.FirstF1 = s.EM/n, s.F1/n, s.FirstEM/n, s.FirstF1/n
	return s, nil
}

// officialGolds drops answers that normalize to nothing; none left means
// unanswerable, scored against "".
func officialGolds(answers []string) []string {
	var g []string
	for _, a := range answers {
		if Normalize(a) != "" {
			g = append(g, a)
		}
	}
	if len(g) == 0 {
		return []string{""}
	}
	return g
}

// TokenF1 is SQuAD's F1 over the bag of normalized words. When either side
// has no words it is 1 if both have none and 0 otherwise.
func TokenF1(pred, gold string) float64 {
	pt, gt := Tokens(pred), Tokens(gold)
	if len(pt) == 0 || len(gt) == 0 {
		if len(pt) == len(gt) {
			return 1
		}
		return 0
	}
	count := map[string]int{}
	for _, w := range gt {
		count[w]++
	}
	same := 0
	for _, w := range pt {
		if count[w] > 0 {
			count[w]--
			same++
		}
	}
	if same == 0 {
		return 0
	}
	p := float64(same) / float64(len(pt))
	r := float64(same) / float64(len(gt))
	return 2 * p * r / (p + r)
}

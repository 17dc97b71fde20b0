package metrics

import (
	"fmt"
	"math"
)

// Matrix holds R[t][i], the score on task i after training through task t
// (both 0-based, in sequence order). Only entries with i <= t are read, so
// rows may be lower-triangular.
type Matrix [][]float64

// tasks checks the shape and returns the number of tasks T.
func (r Matrix) tasks() (int, error) {
	T := len(r)
	if T == 0 {
		return 0, fmt.Errorf("metrics: empty score matrix")
	}
	for t, row := range r {
		if len(row) < t+1 {
			return 0, fmt.Errorf("metrics: score matrix row %d has %d entries, needs %d (tasks 0..%d)", t, len(row), t+1, t)
		}
		for i := 0; i <= t; i++ {
			if math.IsNaN(row[i]) || math.IsInf(row[i], 0) {
				return 0, fmt.Errorf("metrics: score matrix entry [%d][%d] is %v", t, i, row[i])
			}
		}
	}
	return T, nil
}

// AverageAt is the mean score over tasks 0..t after training through task t.
func AverageAt(r Matrix, t int) (float64, error) {
	T, err := r.tasks()
	if err != nil {
		return 0, err
	}
	if t < 0 || t >= T {
		return 0, fmt.Errorf("metrics: stage %d outside 0..%d", t, T-1)
	}
	s := 0.0
	for i := 0; i <= t; i++ {
		s += r[t][i]
	}
	return s / float64(t+1), nil
}

// Average is the mean score over all tasks after the last one:
// 1/T Σ_i R[T-1][i].
func Average(r Matrix) (float64, error) {
	T, err := r.tasks()
	if err != nil {
		return 0, err
	}
	return AverageAt(r, T-1)
}

// BWT is backward transfer: 1/(T-1) Σ_{i<T-1} (R[T-1][i] − R[i][i]).
// Negative values mean forgetting; it needs at least two tasks.
func BWT(r Matrix) (float64, error) {
	T, err := atLeastTwo(r)
	if err != nil {
		return 0, err
	}
	s := 0.0
	for i := 0; i < T-1; i++ {
		s += r[T-1][i] - r[i][i]
	}
	return s / float64(T-1), nil
}

// FWT is forward transfer against per-task baselines (prompt tuning on
// each task alone): 1/(T-1) Σ_{i≥1} (R[i][i] − baseline[i]), the reference's
// definition (§5). baseline[0] is not used but must be present.
func FWT(r Matrix, baseline []float64) (float64, error) {
	T, err := atLeastTwo(r)
	if err != nil {
		return 0, err
	}
	if len(baseline) != T {
		return 0, fmt.Errorf("metrics: %d baseline scores for %d tasks", len(baseline), T)
	}
	s := 0.0
	for i := 1; i < T; i++ {
		s += r[i][i] - baseline[i]
	}
	return s / float64(T-1), nil
}

// Forgetting is the mean over tasks i < T-1 of the drop from the best score
// task i had at any stage before the last to its final score (Chaudhry et
// al., 2018): 1/(T-1) Σ_{i<T-1} (max_{i≤l<T-1} R[l][i] − R[T-1][i]).
func Forgetting(r Matrix) (float64, error) {
	per, err := ForgettingPerTask(r)
	if err != nil {
		return 0, err
	}
	s := 0.0
	for _, f := range per {
		s += f
	}
	return s / float64(len(per)), nil
}

// ForgettingPerTask is each task's forgetting, max_{i≤l<T-1} R[l][i] −
// R[T-1][i], for the tasks i < T-1 (the last task has none yet).
func ForgettingPerTask(r Matrix) ([]float64, error) {
	T, err := atLeastTwo(r)
	if err != nil {
		return nil, err
	}
	out := make([]float64, T-1)
	for i := 0; i < T-1; i++ {
		best := r[i][i]
		for l := i + 1; l < T-1; l++ {
			best = max(best, r[l][i])
		}
		out[i] = best - r[T-1][i]
	}
	return out, nil
}

func atLeastTwo(r Matrix) (int, error) {
	T, err := r.tasks()
	if err == nil && T < 2 {
		err = fmt.Errorf("metrics: transfer and forgetting need at least 2 tasks, have %d", T)
	}
	return T, err
}

package method

// Similarities is implemented by methods that weigh the stored prompts of
// earlier tasks for the task being learned (SHLPT's ᾱ). The runner logs
// the weights after every epoch; a method that does not implement it logs
// none.
type Similarities interface {
	// TaskSimilarity returns the weight of each earlier task's stored
	// prompt in the current task's prompt as it stands now, or nil when
	// the method mixes nothing (no earlier task, or an ablation or setting
	// that mixes none).
	TaskSimilarity() ([]float64, error)
}

// TaskSimilarity is ᾱ, the task-averaged kept weights of the stored
// prompts for the current estimator (what EndTask would mix now).
func (s *SHLPT) TaskSimilarity() ([]float64, error) {
	if s.task == nil || len(s.pool) == 0 || !s.cfg.storeMixes() {
		return nil, nil
	}
	return s.taskAlpha()
}

package run

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	ag "github.com/shlpt-vk/shlpt-vk/autograd"
	"github.com/shlpt-vk/shlpt-vk/shlpt/method"
	"github.com/shlpt-vk/shlpt-vk/shlpt/metrics"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// trainState is where a task's training stands.
type trainState struct {
	epoch, step int
	dropoutSeed uint32
	acc         epochAcc
	best        *float64
	bestEpoch   int
	bad         int
	stopped     bool
	bestSnap    []method.HostTensor
	seconds     float64 // of earlier sessions
	stageSteps  int     // training steps of the stage so far
}

// seed32 draws a 32-bit seed from the run's stream of the names.
func seed32(seed uint64, names ...any) uint32 { return method.Stream(seed, names...).Uint32() }

// promptLen is the method's prompt length, for token counts.
func (r *runner) promptLen() int {
	if p, ok := r.meth.(interface{ PromptLen() int }); ok {
		return p.PromptLen()
	}
	return 0
}

// stage is what one pass of the loop trains: a task of the sequence, or
// with Multitask every task at once.
type stage struct {
	task *method.Task
	// scored are the sequence's tasks it is validated and scored on: the
	// task itself (validation) and every task seen so far (test), or all.
	scored []int
	// row is the results row its scores fill.
	row int
}

// stages lists the loop's stages (built once).
func (r *runner) stages() []*stage {
	if r.stageList == nil {
		r.stageList = r.buildStages()
	}
	return r.stageList
}

func (r *runner) buildStages() []*stage {
	cfg := &r.cfg
	newTask := func(i int, name string, train []method.Example, inputLen, targetLen int) *method.Task {
		return &method.Task{Index: i, Name: name, Train: train, InputLen: inputLen, TargetLen: targetLen,
			BatchSize: cfg.BatchSize, EvalBatch: cfg.EvalBatchSize}
	}
	if cfg.Multitask {
		st := &stage{row: len(r.data) - 1}
		var train []method.Example
		inputLen, targetLen := 1, 1
		for i, td := range r.data {
			train = append(train, td.train...)
			inputLen, targetLen = max(inputLen, td.inputLen), max(targetLen, td.task.TargetLen)
			st.scored = append(st.scored, i)
		}
		// One order for the union, from its own stream.
		perm := method.Stream(cfg.Seed, "multitask-order").Perm(len(train))
		mixed := make([]method.Example, len(train))
		for i, k := range perm {
			mixed[i] = train[k]
		}
		st.task = newTask(0, "multitask", mixed, inputLen, targetLen)
		return []*stage{st}
	}
	var out []*stage
	for t, td := range r.data {
		out = append(out, &stage{task: newTask(t, td.task.Name, td.train, td.inputLen, td.task.TargetLen), scored: []int{t}, row: t})
	}
	return out
}

// stepsPerStage is the number of training batches of stage i.
func (r *runner) stepsPerStage(i int) int {
	n := len(r.stages()[i].task.Train)
	return (n + r.cfg.BatchSize - 1) / r.cfg.BatchSize
}

// runStage trains a stage (from ck when it holds the stage's position),
// then stores it and scores the tasks.
func (r *runner) runStage(ctx context.Context, sg *stage, ck *checkpoint) error {
	cfg := &r.cfg
	m := r.m
	task := sg.task
	t := task.Index
	began := time.Now()
	r.rep.Logf("task %d/%d: %s (%d train examples; inputs padded to %d tokens)",
		t+1, len(r.stages()), task.Name, len(task.Train), task.InputLen)

	m.SetTraining(cfg.Dropout)
	if err := m.SetDropoutSeed(seed32(cfg.Seed, "dropout-begin", t)); err != nil {
		return err
	}
	if err := r.meth.BeginTask(task); err != nil {
		return fmt.Errorf("task %s: %w", task.Name, err)
	}
	if r.meth.FreshOptimizer() || r.optim == nil {
		if r.optim != nil {
			r.optim.Release()
		}
		var err error
		r.optim, err = ag.NewAdamW(r.e, r.meth.Params(), ag.AdamWConfig{LR: cfg.LR, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8,
			WeightDecay: cfg.WeightDecay, MaxGradNorm: float32(cfg.MaxGradNorm)})
		if err != nil {
			return err
		}
	}
	st := trainState{bestEpoch: -1}
	if ck != nil {
		if ck.Started {
			if err := method.Restore(r.meth, ck.current); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
			st = trainState{epoch: ck.Epoch, step: ck.Step, dropoutSeed: ck.DropoutSeed, acc: ck.Partial,
				best: ck.Best, bestEpoch: ck.BestEpoch, bad: ck.Bad, stopped: ck.Stopped, bestSnap: ck.best, seconds: ck.TaskSeconds,
				stageSteps: ck.StageSteps}
		}
		if ck.opt != nil {
			if err := r.optim.SetState(*ck.opt); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
	}
	slots := map[int]*method.RecordedStep{}
	defer func() {
		for _, s := range slots {
			s.Release()
		}
	}()
	steps := (len(task.Train) + cfg.BatchSize - 1) / cfg.BatchSize
	for ; st.epoch < cfg.Epochs && !st.stopped; st.epoch++ {
		if err := r.trainEpoch(ctx, sg, &st, slots, steps, began); err != nil {
			return err
		}
	}
	if st.bestSnap != nil {
		if err := method.Restore(r.meth, st.bestSnap); err != nil {
			return err
		}
	}
	return r.finishStage(sg, &st, began)
}

// validate scores the stage's tasks on their valid sets with the method's
// validation prompts: the mean primary metric in percent.
func (r *runner) validate(sg *stage) (float64, error) {
	pr, err := r.meth.EvalPrompts(method.Validation, sg.task.Index)
	if err != nil {
		return 0, err
	}
	defer pr.Release()
	sum := 0.0
	for _, i := range sg.scored {
		d := r.data[i]
		res, err := r.ev.evaluate(d, d.data.Valid, d.valid, pr)
		if err != nil {
			return 0, fmt.Errorf("task %s: validation: %w", d.task.Name, err)
		}
		sum += 100 * res.Primary().Value
	}
	return sum / float64(len(sg.scored)), nil
}

// trainEpoch runs the rest of epoch st.epoch, validates and checkpoints.
func (r *runner) trainEpoch(ctx context.Context, sg *stage, st *trainState, slots map[int]*method.RecordedStep, steps int, began time.Time) error {
	cfg := &r.cfg
	m := r.m
	task := sg.task
	t, ep := task.Index, st.epoch
	N := len(task.Train)
	perm := method.Stream(cfg.Seed, "shuffle", t, ep).Perm(N)
	seed := st.dropoutSeed
	if st.step == 0 {
		seed = seed32(cfg.Seed, "dropout", t, ep)
		st.acc = epochAcc{}
	}
	if st.acc.Parts == nil {
		st.acc.Parts = map[string]float64{}
	}
	if err := m.SetDropoutSeed(seed); err != nil {
		return err
	}
	m.SetTraining(cfg.Dropout)
	r.rep.BeginEpoch(task.Name, t, len(r.stages()), ep, cfg.Epochs, steps)
	r.e.Device().ResetPeak()
	for s := st.step; s < steps; s++ {
		if ctx.Err() != nil {
			return r.interrupt(task, st, s, began)
		}
		stepStart := time.Now()
		rows := perm[s*cfg.BatchSize : min((s+1)*cfg.BatchSize, N)]
		sl := slots[len(rows)]
		if sl == nil {
			var err error
			if sl, err = r.newSlot(task, len(rows)); err != nil {
				return fmt.Errorf("task %s: recording the training step: %w", task.Name, err)
			}
			slots[len(rows)] = sl
		}
		_, err := sl.Write(task.Train, rows, ep, s)
		var loss float64
		var parts map[string]float64
		if err == nil {
			loss, parts, err = sl.Run()
		}
		if err != nil {
			return fmt.Errorf("task %s epoch %d step %d: %w", task.Name, ep+1, s+1, err)
		}
		if name, v, bad := nonFiniteLoss(loss, parts); bad {
			return fmt.Errorf("task %s epoch %d step %d: the %s is %v: training diverged (a lower --lr may help); the last checkpoint is kept", task.Name, ep+1, s+1, name, v)
		}
		st.acc.Steps++
		st.acc.Loss += loss
		for k, v := range parts {
			st.acc.Parts[k] += v
		}
		st.acc.Tokens += float64(len(rows) * (r.promptLen() + task.InputLen + task.TargetLen))
		st.acc.Seconds += time.Since(stepStart).Seconds()
		r.rep.Step(s+1, st.acc.Loss/float64(st.acc.Steps), st.acc.Tokens/max(st.acc.Seconds, 1e-9))
		r.globalStep++
		if err := r.logs.Step(StepLog{Task: task.Name, TaskIndex: t, Epoch: ep, Step: s + 1, GlobalStep: r.globalStep,
			Loss: loss, Parts: parts, TokensPerS: st.acc.Tokens / max(st.acc.Seconds, 1e-9)}); err != nil {
			return err
		}
		st.stageSteps++
		if cfg.MaxSteps > 0 && st.stageSteps >= cfg.MaxSteps {
			st.stopped = true
			break
		}
	}
	st.step = 0
	trainSecs := st.acc.Seconds
	r.res.Timing.TrainSeconds += trainSecs

	line := rundir.EpochLine{Task: task.Name, TaskIndex: t, Epoch: ep, Steps: st.acc.Steps, Parts: map[string]float64{},
		TrainSeconds: trainSecs, PeakBytes: r.e.Device().MemoryStats().Peak}
	if n := float64(st.acc.Steps); n > 0 {
		line.Loss = st.acc.Loss / n
		for k, v := range st.acc.Parts {
			line.Parts[k] = v / n
		}
	}
	if trainSecs > 0 {
		line.TokensPerS = st.acc.Tokens / trainSecs
	}
	maxedOut := cfg.MaxSteps > 0 && st.stageSteps >= cfg.MaxSteps
	if ep >= min(cfg.EvalFrom, cfg.Epochs-1) || maxedOut {
		evalStart := time.Now()
		score, err := r.validate(sg)
		if err != nil {
			return err
		}
		line.Valid = &score
		if st.best == nil || score > *st.best {
			st.best, st.bestEpoch, st.bad = &score, ep, 0
			if st.bestSnap, err = method.Snapshot(r.meth); err != nil {
				return err
			}
		} else {
			st.bad++
			st.stopped = st.stopped || st.bad >= cfg.Patience
		}
		line.Best = st.best
		line.EvalSeconds = time.Since(evalStart).Seconds()
		r.res.Timing.EvalSeconds += line.EvalSeconds
	}
	var err error
	if line.Alpha, err = r.similarities(); err != nil {
		return fmt.Errorf("task %s epoch %d: %w", task.Name, ep+1, err)
	}
	if err := r.appendMetrics(line); err != nil {
		return err
	}
	if err := r.logs.Epoch(EpochLog{Line: line, GlobalStep: r.globalStep, Earlier: r.cfg.Tasks[:min(t, len(r.cfg.Tasks))]}); err != nil {
		return err
	}
	r.rep.EndEpoch(line)
	switch {
	case maxedOut:
		r.rep.Logf("task %s: stopping after %d steps (--max-steps)", task.Name, st.stageSteps)
	case st.stopped:
		r.rep.Logf("task %s: stopping early after epoch %d (%d validations without improvement)", task.Name, ep+1, st.bad)
	}
	next := *st
	next.epoch, next.step, next.acc = ep+1, 0, epochAcc{}
	return r.saveTaskCheckpoint(task, &next, began)
}

// interrupt checkpoints the position before step s and stops the run.
func (r *runner) interrupt(task *method.Task, st *trainState, s int, began time.Time) error {
	seed, err := r.m.DropoutSeed()
	if err != nil {
		return err
	}
	at := *st
	at.step, at.dropoutSeed = s, seed
	if err := r.writeResults(); err != nil {
		return err
	}
	if err := r.saveTaskCheckpoint(task, &at, began); err != nil {
		return err
	}
	cont := r.opt.ContinueCommand
	if cont == "" {
		cont = "shlpt-vk train --resume " + r.dir
	}
	return fmt.Errorf("%w at task %s epoch %d step %d; continue with: %s", ErrInterrupted, task.Name, st.epoch+1, s, cont)
}

// newSlot records the training step for batches of B rows.
func (r *runner) newSlot(task *method.Task, B int) (*method.RecordedStep, error) {
	return method.RecordStep(r.m, r.meth, r.optim, task, B)
}

// saveTaskCheckpoint checkpoints a task in progress at st.
func (r *runner) saveTaskCheckpoint(task *method.Task, st *trainState, began time.Time) error {
	cur, err := method.Snapshot(r.meth)
	if err != nil {
		return err
	}
	ck := &checkpoint{Task: task.Index, Started: true, Epoch: st.epoch, Step: st.step, DropoutSeed: st.dropoutSeed,
		Partial: st.acc, Best: st.best, BestEpoch: st.bestEpoch, Bad: st.bad, Stopped: st.stopped,
		TaskSeconds: st.seconds + time.Since(began).Seconds(), current: cur, best: st.bestSnap, StageSteps: st.stageSteps}
	return r.save(ck, true)
}

// save completes a checkpoint with the method's state, the optimizer (when
// it matters for what follows), the results and the metrics length.
func (r *runner) save(ck *checkpoint, started bool) error {
	var err error
	if ck.method, err = r.meth.State(); err != nil {
		return err
	}
	if r.optim != nil && (started || !r.meth.FreshOptimizer()) {
		s, err := r.optim.State()
		if err != nil {
			return err
		}
		ck.opt, ck.HasOptimizer = &s, true
	}
	ck.ConfigHash, ck.MetricsLen, ck.files = r.hash, r.metricsLen, r.out.files
	if err := ck.checkFinite(); err != nil {
		var where string
		switch {
		case !ck.Started:
			where = "after task " + r.stages()[ck.Task-1].task.Name
		case ck.Step == 0:
			where = fmt.Sprintf("task %s after epoch %d", r.stages()[ck.Task].task.Name, ck.Epoch)
		default:
			where = fmt.Sprintf("task %s epoch %d step %d", r.stages()[ck.Task].task.Name, ck.Epoch+1, ck.Step)
		}
		return fmt.Errorf("%s: %w: training diverged (a lower --lr may help); the last checkpoint is kept", where, err)
	}
	if ck.Logs, err = r.logs.Sync(); err != nil {
		return err
	}
	res := *r.res
	res.Timing.TotalSeconds = r.timing.TotalSeconds + time.Since(r.start).Seconds()
	ck.Results = &res
	return saveCheckpoint(r.dir, ck)
}

// setMetrics records every task's primary metric under the run's choice
// and the other one.
func (r *runner) setMetrics() {
	other := rundir.OtherMetrics(r.cfg.PrimaryMetrics)
	var primary, alternate []string
	for _, td := range r.data {
		primary = append(primary, metrics.PrimaryName(td.task, rundir.MetricOptions(r.cfg.PrimaryMetrics)))
		alternate = append(alternate, metrics.PrimaryName(td.task, rundir.MetricOptions(other)))
	}
	r.res.SetMetrics(r.cfg.PrimaryMetrics, primary, alternate)
}

// alternate returns the matrix of a split under the other primary-metrics
// choice, or nil when the run keeps none.
func (r *runner) alternate(split string) [][]*float64 {
	switch a := r.res.Alternate; {
	case a == nil:
		return nil
	case split == "valid":
		return a.Matrix.Valid
	}
	return r.res.Alternate.Matrix.Test
}

// frozen reports whether a method tests every earlier task with what it
// stored when that task ended, on a frozen model (method.Frozen).
func frozen(m method.Method) bool {
	f, ok := m.(method.Frozen)
	return ok && f.TestsFrozen()
}

// finishStage stores the stage's task and scores the tasks seen so far
// (each with its own stored state), or with Multitask every task with the
// one prompt, on their valid and test sets.
func (r *runner) finishStage(sg *stage, st *trainState, began time.Time) error {
	task := sg.task
	t := task.Index
	details, err := r.meth.EndTask()
	if err != nil {
		return fmt.Errorf("task %s: %w", task.Name, err)
	}
	evalStart := time.Now()
	tr := rundir.TaskResult{Task: task.Name, Index: t, TrainExamples: len(task.Train), EpochsRun: st.epoch, StoppedEarly: st.stopped,
		BestEpoch: st.bestEpoch, BestValid: st.best, Method: details, Scores: map[string]map[string]float64{}}
	seen := sg.scored
	if !r.cfg.Multitask {
		seen = nil
		for i := 0; i <= t; i++ {
			seen = append(seen, i)
		}
		td := r.data[t]
		tr.ValidExamples, tr.TestExamples, tr.Truncated = len(td.valid), len(td.test), td.truncated
	}
	for _, i := range seen {
		d := r.data[i]
		with := i
		if r.cfg.Multitask {
			with = t
		}
		for _, split := range []struct {
			name string
			raw  []tasks.Example
			exs  []method.Example
			into [][]*float64
		}{{"valid", d.data.Valid, d.valid, r.res.Matrix.Valid}, {"test", d.data.Test, d.test, r.res.Matrix.Test}} {
			alt := r.alternate(split.name)
			if frozen(r.meth) && !r.cfg.Multitask && i < t && split.into[t-1][i] != nil {
				// What task i is tested with has not changed since the last
				// stage, and evaluation is deterministic: the same score.
				v := *split.into[t-1][i]
				split.into[sg.row][i] = &v
				if alt != nil {
					a := *alt[t-1][i]
					alt[sg.row][i] = &a
				}
				continue
			}
			pr, err := r.meth.EvalPrompts(method.Test, with)
			if err != nil {
				return err
			}
			res, err := r.ev.evaluate(d, split.raw, split.exs, pr)
			pr.Release()
			if err != nil {
				return fmt.Errorf("scoring task %s after task %s: %w", d.task.Name, task.Name, err)
			}
			split.into[sg.row][i] = pct(res.Primary().Value)
			if alt != nil {
				v, ok := res.Get(r.res.Alternate.Metric[i])
				if !ok {
					return fmt.Errorf("scoring task %s: no %s score", d.task.Name, r.res.Alternate.Metric[i])
				}
				alt[sg.row][i] = pct(v)
			}
			if i == t && !r.cfg.Multitask {
				tr.Scores[split.name] = scoreMap(res)
			}
		}
		r.rep.Logf("after task %d/%d (%s): %s valid %.2f test %.2f", t+1, len(r.stages()), task.Name, d.task.Name,
			*r.res.Matrix.Valid[sg.row][i], *r.res.Matrix.Test[sg.row][i])
	}
	r.res.Timing.EvalSeconds += time.Since(evalStart).Seconds()
	tr.Seconds = st.seconds + time.Since(began).Seconds()
	r.res.PerTask = append(r.res.PerTask, tr)
	r.res.StagesDone = sg.row + 1
	if err := r.writeResults(); err != nil {
		return err
	}
	if err := r.logs.Stage(StageLog{Row: sg.row, GlobalStep: r.globalStep, Results: r.res, Scored: seen}); err != nil {
		return err
	}
	return r.save(&checkpoint{Task: t + 1}, false)
}

// nonFiniteLoss names the first of the loss and its parts that is NaN or
// infinite.
func nonFiniteLoss(loss float64, parts map[string]float64) (string, float64, bool) {
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return "loss", loss, true
	}
	names := make([]string, 0, len(parts))
	for k := range parts {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if v := parts[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			return "loss term " + k, v, true
		}
	}
	return "", 0, false
}

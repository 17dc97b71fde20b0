package run

import (
	"maps"
	"path"
	"slices"
	"time"

	"github.com/shlpt-vk/shlpt-vk/internal/tfevents"
	"github.com/shlpt-vk/shlpt-vk/shlpt/rundir"
)

// tbEventsFile is the run's one TensorBoard event file. Its name is fixed
// (TensorBoard needs only "tfevents" in it), so that a resumed run
// continues the same file instead of starting a second one.
var tbEventsFile = path.Join(rundir.TBDir, "events.out.tfevents.0.shlpt-vk")

// tbLog writes scalars for TensorBoard: per step train/loss, train/<part>
// and train/tokens_per_s; per epoch epoch/loss, epoch/<part>,
// epoch/tokens_per_s, valid/<task> and alpha/<task>/<earlier task>; per
// stage test/<task>, test/average. The x axis is the run's training step.
type tbLog struct {
	f *logFile
	w *tfevents.Writer
}

func openTBLog(dir string, open func(rel string) (*logFile, error)) (Logger, error) {
	f, err := open(tbEventsFile)
	if err != nil {
		return nil, err
	}
	t := &tbLog{f: f, w: tfevents.NewWriter(f)}
	if f.empty {
		t.w.Version(wallTime())
		f.empty = false
	}
	return t, t.w.Err()
}

func wallTime() float64 { return float64(time.Now().UnixNano()) / 1e9 }

func (t *tbLog) scalars(step int, prefix string, loss float64, parts map[string]float64, tps float64) {
	now := wallTime()
	t.w.Scalar(now, int64(step), prefix+"/loss", float32(loss))
	for _, name := range slices.Sorted(maps.Keys(parts)) {
		t.w.Scalar(now, int64(step), prefix+"/"+name, float32(parts[name]))
	}
	t.w.Scalar(now, int64(step), prefix+"/tokens_per_s", float32(tps))
}

func (t *tbLog) Step(s StepLog) error {
	t.scalars(s.GlobalStep, "train", s.Loss, s.Parts, s.TokensPerS)
	return t.w.Err()
}

func (t *tbLog) Epoch(e EpochLog) error {
	l := e.Line
	t.scalars(e.GlobalStep, "epoch", l.Loss, l.Parts, l.TokensPerS)
	now := wallTime()
	if l.Valid != nil {
		t.w.Scalar(now, int64(e.GlobalStep), "valid/"+l.Task, float32(*l.Valid))
	}
	for j, a := range l.Alpha {
		if j < len(e.Earlier) {
			t.w.Scalar(now, int64(e.GlobalStep), "alpha/"+l.Task+"/"+e.Earlier[j], float32(a))
		}
	}
	return t.w.Err()
}

func (t *tbLog) Stage(s StageLog) error {
	r := s.Results
	now := wallTime()
	sum, n := 0.0, 0
	for _, i := range s.Scored {
		if v := r.Matrix.Test[s.Row][i]; v != nil {
			t.w.Scalar(now, int64(s.GlobalStep), "test/"+r.Tasks[i], float32(*v))
			sum += *v
			n++
		}
	}
	if n > 0 {
		t.w.Scalar(now, int64(s.GlobalStep), "test/average", float32(sum/float64(n)))
	}
	return t.w.Err()
}

func (t *tbLog) Sync() (map[string]int64, error) {
	n, err := t.f.sync()
	return map[string]int64{t.f.rel: n}, err
}

func (t *tbLog) Close() error { return t.f.close() }

package run

import (
	"strings"
)

// warnNotV10 warns when the model is not an original T5 v1.0 checkpoint:
// the paper's numbers are for t5-large v1.0 (reference §2), which was
// pretrained multitask on GLUE, SuperGLUE and SQuAD, so another
// checkpoint's scores do not compare with them.
func (r *runner) warnNotV10() {
	if d := r.m.Config.NotV10(); len(d) > 0 {
		r.rep.Logf("warning: %s is not an original T5 v1.0 checkpoint (%s); the paper's numbers are for t5-large v1.0",
			r.cfg.Model, strings.Join(d, ", "))
	}
}

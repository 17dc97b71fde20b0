package sweep

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/internal/atomicfile"
	"github.com/shlpt-vk/shlpt-vk/internal/jsonfile"
	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// Files and folders of a plan directory.
const (
	PlanFile     = "plan.json"
	RunsFile     = "runs.tsv"
	SlurmFile    = "slurm.sbatch"
	K8sFile      = "k8s-job.yaml"
	ParallelFile = "parallel.txt"
	// RunsDir holds the run directories (runs/std-o1/shlpt/s42).
	RunsDir = "runs"
	// LogsDir holds each run's output under the local executor and the
	// Slurm array's output files.
	LogsDir = "logs"
	// FailuresDir holds failures/<id>.json for each run whose last attempt
	// failed.
	FailuresDir = "failures"
	// LockFile is locked while `sweep run` executes the plan.
	LockFile = ".lock"
)

// Format names the plan.json schema.
const Format = "shlpt-vk sweep plan 1"

// Plan is plan.json: the spec, the runs it expands to and their hash.
type Plan struct {
	Format string `json:"format"`
	Spec   Spec   `json:"spec"`
	Runs   []Run  `json:"runs"`
	// SHA256 is the hash of the spec and the runs; a plan whose content
	// does not match it was edited by hand.
	SHA256 string `json:"sha256"`
	// Dir is where the plan was read from (not stored).
	Dir string `json:"-"`
}

// NewPlan expands a spec into a plan.
func NewPlan(s Spec, force bool) (*Plan, error) {
	runs, err := s.Expand(force)
	if err != nil {
		return nil, err
	}
	p := &Plan{Format: Format, Spec: s, Runs: runs}
	p.SHA256 = p.hash()
	return p, nil
}

func (p *Plan) hash() string {
	b, _ := json.Marshal(struct {
		Format string `json:"format"`
		Spec   Spec   `json:"spec"`
		Runs   []Run  `json:"runs"`
	}{p.Format, p.Spec, p.Runs})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// RunDir is the absolute run directory of run i.
func (p *Plan) RunDir(i int) string {
	return filepath.Join(p.Dir, RunsDir, filepath.FromSlash(p.Runs[i].Dir))
}

// Run returns run i; an index outside the plan is an error naming it.
func (p *Plan) Run(i int) (Run, error) {
	if i < 0 || i >= len(p.Runs) {
		return Run{}, fmt.Errorf("--index %d is out of range: plan %s has %d runs (0-%d)", i, p.Dir, len(p.Runs), len(p.Runs)-1)
	}
	return p.Runs[i], nil
}

// TrainArgs are the arguments of run i's train process.
func (p *Plan) TrainArgs(i int) []string {
	return append(append([]string{}, p.Runs[i].Args...), "--out", p.RunDir(i))
}

// planJSON is plan.json's bytes.
func (p *Plan) planJSON() []byte {
	b, _ := json.MarshalIndent(p, "", "  ")
	return append(b, '\n')
}

// RunsTSV is runs.tsv: a header, then per run its index, id, run
// directory and train arguments (quoted for a POSIX shell), tab-separated.
func (p *Plan) RunsTSV() []byte {
	var b bytes.Buffer
	b.WriteString("index\tid\tdir\targs\n")
	for i, r := range p.Runs {
		fmt.Fprintf(&b, "%d\t%s\t%s\t%s\n", i, r.ID, r.Dir, ShellJoin(r.Args))
	}
	return b.Bytes()
}

// ShellJoin quotes arguments for a POSIX shell: plain words stay, others
// go in single quotes.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, c := range s {
		plain := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("@%+=:,./_-", c)
		if !plain {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}

// ErrSamePlan is returned by Write when the directory already holds the
// same plan (its front-ends were rewritten).
var ErrSamePlan = errors.New("the plan directory already holds this plan")

// Write writes the plan and its front-ends into dir, which must not exist
// or be empty, or hold the same plan (then only the front-ends are
// rewritten and ErrSamePlan returned). A new plan appears whole or not at
// all: it is written in a temporary folder beside dir and renamed.
func (p *Plan) Write(dir string, fe Frontends) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	p.Dir = abs
	entries, err := os.ReadDir(abs)
	switch {
	case err == nil && len(entries) > 0:
		old, lerr := Load(abs)
		if lerr != nil {
			return fmt.Errorf("%s is not empty and holds no plan that can be read (%v): choose another --out", dir, lerr)
		}
		if old.SHA256 != p.SHA256 {
			return fmt.Errorf("%s holds another plan (%s): choose another --out", dir, old.difference(p))
		}
		for name, b := range fe.files(p) {
			if err := atomicfile.WriteFile(filepath.Join(abs, name), b); err != nil {
				return err
			}
		}
		return ErrSamePlan
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	}
	parent := filepath.Dir(abs)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(abs)+".tmp-*")
	if err != nil {
		return err
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(err)
	}
	files := fe.files(p)
	files[PlanFile] = p.planJSON()
	files[RunsFile] = p.RunsTSV()
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return fail(err)
		}
	}
	for _, d := range []string{RunsDir, LogsDir, FailuresDir} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return fail(err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return fail(err)
	}
	// An empty dir is replaced by the rename.
	if err := os.Rename(tmp, abs); err != nil {
		return fail(fmt.Errorf("writing plan %s: %w", dir, err))
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// difference names the first way p (a stored plan) differs from q.
func (p *Plan) difference(q *Plan) string {
	if p.Spec.Name != q.Spec.Name {
		return fmt.Sprintf("it is %s, this plan %s", p.Spec.Name, q.Spec.Name)
	}
	if len(p.Runs) != len(q.Runs) {
		return fmt.Sprintf("it has %d runs, this plan %d", len(p.Runs), len(q.Runs))
	}
	for i := range p.Runs {
		a, b := p.Runs[i], q.Runs[i]
		if a.Dir != b.Dir {
			return fmt.Sprintf("its run %d is %s, this plan's %s", i, a.Dir, b.Dir)
		}
		if sa, sb := strings.Join(a.Args, " "), strings.Join(b.Args, " "); sa != sb {
			return fmt.Sprintf("its run %d (%s) has the arguments %s, this plan's %s", i, a.Dir, sa, sb)
		}
	}
	return "its spec differs"
}

// Load reads the plan in dir and checks that neither plan.json nor
// runs.tsv was edited by hand.
func Load(dir string) (*Plan, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(abs, PlanFile)
	var p Plan
	if err := jsonfile.Read(path, 256<<20, "a plan.json", &p); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not a plan directory (no %s; make one with 'shlpt-vk sweep plan')", dir, PlanFile)
		}
		return nil, err
	}
	if p.Format != Format {
		return nil, fmt.Errorf("%s: format %q, expected %q", path, p.Format, Format)
	}
	if h := p.hash(); h != p.SHA256 {
		return nil, fmt.Errorf("%s was edited by hand: its content does not match its sha256 (make a new plan with 'shlpt-vk sweep plan')", path)
	}
	p.Dir = abs
	tsvPath := filepath.Join(abs, RunsFile)
	tsv, err := limitio.ReadFile(tsvPath, 256<<20, "a runs.tsv")
	if err != nil {
		return nil, err
	}
	if want := p.RunsTSV(); !bytes.Equal(tsv, want) {
		return nil, fmt.Errorf("%s was edited by hand: %s (make a new plan with 'shlpt-vk sweep plan')", tsvPath, firstLineDiff(tsv, want))
	}
	return &p, nil
}

// firstLineDiff names the first line where got differs from want.
func firstLineDiff(got, want []byte) string {
	g := strings.Split(string(got), "\n")
	w := strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		if i >= len(g) || i >= len(w) || g[i] != w[i] {
			return fmt.Sprintf("line %d differs from %s", i+1, PlanFile)
		}
	}
	return "it differs from " + PlanFile
}

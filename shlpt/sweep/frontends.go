package sweep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"text/template"
)

// Frontends are the settings of the scheduler files written into a plan
// directory. They are not part of the plan's hash: writing the same plan
// again with other settings rewrites only these files.
type Frontends struct {
	// Bin is the shlpt-vk program the schedulers call (Slurm and GNU
	// parallel; the Kubernetes image has its own on PATH).
	Bin string
	// MaxParallel bounds the runs at once: Slurm's %K, Kubernetes'
	// parallelism.
	MaxParallel int

	SlurmPartition string // --partition ("": the cluster's default)
	SlurmTime      string // --time ("": the partition's default)
	SlurmGres      string // --gres ("gpu:1"; "none" writes no --gres)

	K8sImage string // the container image, with shlpt-vk on its PATH
	K8sClaim string // the PersistentVolumeClaim that holds the plan directory
	// K8sMount is where the claim is mounted; the plan directory is
	// expected at K8sMount/<plan directory's name>.
	K8sMount   string
	K8sBackoff int // backoffLimitPerIndex: retries of one run's pod
}

// DefaultFrontends are the front-ends' defaults.
func DefaultFrontends() Frontends {
	return Frontends{Bin: "shlpt-vk", MaxParallel: 8, SlurmGres: "gpu:1",
		K8sImage: "shlpt-vk:latest", K8sClaim: "shlpt-vk-runs", K8sMount: "/sweep", K8sBackoff: 3}
}

// Check reports a front-end setting that cannot work.
func (f Frontends) Check() error {
	switch {
	case f.Bin == "":
		return fmt.Errorf("--bin: empty")
	case f.MaxParallel < 1:
		return fmt.Errorf("--max-parallel %d: must be at least 1", f.MaxParallel)
	case f.K8sBackoff < 0:
		return fmt.Errorf("--k8s-backoff %d: must not be negative", f.K8sBackoff)
	case !path.IsAbs(f.K8sMount):
		return fmt.Errorf("--k8s-mount %q: must be an absolute path", f.K8sMount)
	case f.K8sImage == "" || f.K8sClaim == "":
		return fmt.Errorf("--k8s-image and --k8s-claim must not be empty")
	}
	for _, s := range []struct{ flag, v string }{{"slurm-partition", f.SlurmPartition}, {"slurm-time", f.SlurmTime}, {"slurm-gres", f.SlurmGres}} {
		if strings.ContainsAny(s.v, " \t\n\"'\\$`") {
			return fmt.Errorf("--%s %q: no spaces or quotes", s.flag, s.v)
		}
	}
	return nil
}

// files renders every front-end of plan p (whose Dir is set).
func (f Frontends) files(p *Plan) map[string][]byte {
	return map[string][]byte{
		SlurmFile:    f.slurm(p),
		K8sFile:      f.k8s(p),
		ParallelFile: f.parallel(p),
	}
}

var slurmTemplate = template.Must(template.New("slurm").Parse(`#!/bin/bash
# shlpt-vk sweep plan {{.Name}}: {{.N}} runs of 'shlpt-vk train' as a Slurm job array.
# Submit with:  sbatch {{.Self}}
#
# Array task I runs line I of runs.tsv through 'shlpt-vk sweep exec': a complete
# run is skipped, an interrupted one resumes from its checkpoint, a failure is
# recorded in failures/ ('shlpt-vk sweep status' shows it). Slurm's SIGTERM
# (preemption, scancel, requeue, or --signal two minutes before the time limit)
# stops the run at its next step after a checkpoint; at the time limit
# --requeue-on-interrupt puts the task back in the queue, where it resumes
# (a preempted or requeued task is requeued by Slurm, a cancelled one stays
# cancelled). At most {{.K}} runs at once.
# SHLPT_VK overrides the program's path.
#SBATCH --job-name={{.JobName}}
#SBATCH --array=0-{{.Last}}%{{.K}}
#SBATCH --requeue
#SBATCH --signal=B:TERM@120
{{- if .Gres}}
#SBATCH --gres={{.Gres}}
{{- end}}
{{- if .Partition}}
#SBATCH --partition={{.Partition}}
{{- end}}
{{- if .Time}}
#SBATCH --time={{.Time}}
{{- end}}
#SBATCH --output={{.Output}}
#SBATCH --open-mode=append

exec "${SHLPT_VK:-{{.Bin}}}" sweep exec {{.Plan}} --index "$SLURM_ARRAY_TASK_ID" --requeue-on-interrupt
`))

func (f Frontends) slurm(p *Plan) []byte {
	gres := f.SlurmGres
	if gres == "none" {
		gres = ""
	}
	return render(slurmTemplate, map[string]any{
		"Name": p.Spec.Name, "N": len(p.Runs), "Last": len(p.Runs) - 1, "K": f.MaxParallel,
		"Self":    shellQuote(path.Join(p.Dir, SlurmFile)),
		"JobName": "shlpt-" + dnsLabel(path.Base(p.Dir), 50),
		"Gres":    gres, "Partition": f.SlurmPartition, "Time": f.SlurmTime,
		"Output": path.Join(p.Dir, LogsDir, "slurm-%A_%a.out"),
		"Bin":    f.Bin, "Plan": shellQuote(p.Dir),
	})
}

// render executes one of the fixed templates of this file.
func render(t *template.Template, data map[string]any) []byte {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		panic(err) // the templates and the types of their data are fixed
	}
	return b.Bytes()
}

var k8sTemplate = template.Must(template.New("k8s").Parse(`# shlpt-vk sweep plan {{.Name}}: {{.N}} runs of 'shlpt-vk train' as a Kubernetes Indexed Job.
# Copy the plan directory onto the volume claim {{.Claim}} so that it is at
# {{.PlanDir}} when the claim is mounted at {{.Mount}} (the run directories are written
# there, under runs/), then:  kubectl apply -f k8s-job.yaml
# Pod I runs line I of runs.tsv through 'shlpt-vk sweep exec': a complete run is
# skipped, an interrupted one resumes from its checkpoint. A pod evicted or
# preempted gets SIGTERM and {{.Grace}} s to checkpoint; such disruptions do not count
# against the {{.Backoff}} retries each run has. The --model, --data and --tokenizer
# paths of runs.tsv must exist in the container.
apiVersion: batch/v1
kind: Job
metadata:
  name: {{.JobName}}
  labels:
    app.kubernetes.io/name: shlpt-vk
    app.kubernetes.io/component: sweep
spec:
  completionMode: Indexed
  completions: {{.N}}
  parallelism: {{.K}}
  backoffLimitPerIndex: {{.Backoff}}
  podFailurePolicy:
    rules:
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
  template:
    metadata:
      labels:
        app.kubernetes.io/name: shlpt-vk
        app.kubernetes.io/component: sweep
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: {{.Grace}}
      containers:
        - name: train
          image: {{.Image}}
          command: ["shlpt-vk", "sweep", "exec", {{.PlanDirQ}}, "--index", "$(JOB_COMPLETION_INDEX)"]
          env:
            - name: JOB_COMPLETION_INDEX
              valueFrom:
                fieldRef:
                  fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
          resources:
            limits:
              nvidia.com/gpu: 1
          volumeMounts:
            - name: runs
              mountPath: {{.MountQ}}
      volumes:
        - name: runs
          persistentVolumeClaim:
            claimName: {{.ClaimQ}}
`))

func (f Frontends) k8s(p *Plan) []byte {
	planDir := path.Join(f.K8sMount, path.Base(p.Dir))
	return render(k8sTemplate, map[string]any{
		"Name": p.Spec.Name, "N": len(p.Runs), "K": min(f.MaxParallel, len(p.Runs)), "Backoff": f.K8sBackoff,
		"Grace": 150, "Claim": f.K8sClaim, "ClaimQ": yamlString(f.K8sClaim),
		"Mount": f.K8sMount, "MountQ": yamlString(f.K8sMount),
		"PlanDir": planDir, "PlanDirQ": yamlString(planDir),
		"JobName": "shlpt-" + dnsLabel(path.Base(p.Dir), 50), "Image": yamlString(f.K8sImage),
	})
}

// parallel is one command per run for GNU parallel.
func (f Frontends) parallel(p *Plan) []byte {
	var b bytes.Buffer
	exec := ShellJoin([]string{f.Bin, "sweep", "exec", p.Dir})
	for i := range p.Runs {
		fmt.Fprintf(&b, "%s --index %d\n", exec, i)
	}
	return b.Bytes()
}

// yamlString quotes s as a YAML (and JSON) string.
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// dnsLabel makes s a lowercase DNS label of at most n characters, as
// Kubernetes names and readable Slurm job names want.
func dnsLabel(s string, n int) string {
	var b []byte
	for _, c := range []byte(strings.ToLower(s)) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b = append(b, c)
		} else if len(b) > 0 && b[len(b)-1] != '-' {
			b = append(b, '-')
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	out := strings.Trim(string(b), "-")
	if out == "" {
		return "plan"
	}
	return out
}

package sweep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// k8s-job.yaml decodes strictly (no unknown or misplaced field) into the
// Kubernetes batch/v1 Job type: an Indexed Job with one completion per
// run, the completion index wired into the command, one GPU per pod and
// the claim mounted where the command looks for the plan.
func TestK8sJobDecodesStrictly(t *testing.T) {
	p := writeTestPlan(t, smallSpec(), Frontends{})
	fe := DefaultFrontends()
	b, err := os.ReadFile(filepath.Join(p.Dir, K8sFile))
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict(b, &job); err != nil {
		t.Fatalf("k8s-job.yaml does not decode strictly into batch/v1 Job: %v\n%s", err, b)
	}
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Errorf("apiVersion %q kind %q", job.APIVersion, job.Kind)
	}
	s := job.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode %v, want Indexed", s.CompletionMode)
	}
	if s.Completions == nil || int(*s.Completions) != len(p.Runs) {
		t.Errorf("completions %v, want %d (the plan's runs)", s.Completions, len(p.Runs))
	}
	if s.Parallelism == nil || int(*s.Parallelism) != min(fe.MaxParallel, len(p.Runs)) {
		t.Errorf("parallelism %v", s.Parallelism)
	}
	if s.BackoffLimitPerIndex == nil || int(*s.BackoffLimitPerIndex) != fe.K8sBackoff {
		t.Errorf("backoffLimitPerIndex %v, want %d", s.BackoffLimitPerIndex, fe.K8sBackoff)
	}
	if s.PodFailurePolicy == nil || len(s.PodFailurePolicy.Rules) != 1 || s.PodFailurePolicy.Rules[0].Action != batchv1.PodFailurePolicyActionIgnore {
		t.Errorf("podFailurePolicy %+v: disruptions should not count as failures", s.PodFailurePolicy)
	}
	pod := s.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q (backoffLimitPerIndex and podFailurePolicy need Never)", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Containers))
	}
	c := pod.Containers[0]
	planDir := fe.K8sMount + "/" + filepath.Base(p.Dir)
	want := []string{"shlpt-vk", "sweep", "exec", planDir, "--index", "$(JOB_COMPLETION_INDEX)"}
	if strings.Join(c.Command, " ") != strings.Join(want, " ") {
		t.Errorf("command %q, want %q", c.Command, want)
	}
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "JOB_COMPLETION_INDEX" {
			env = &c.Env[i]
		}
	}
	if env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil ||
		env.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("JOB_COMPLETION_INDEX is not the completion index annotation: %+v", env)
	}
	gpu := c.Resources.Limits["nvidia.com/gpu"]
	if gpu.Value() != 1 {
		t.Errorf("nvidia.com/gpu limit %v, want 1", gpu.String())
	}
	if c.Image != fe.K8sImage {
		t.Errorf("image %q", c.Image)
	}
	if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != fe.K8sMount || len(pod.Volumes) != 1 ||
		pod.Volumes[0].Name != c.VolumeMounts[0].Name || pod.Volumes[0].PersistentVolumeClaim == nil ||
		pod.Volumes[0].PersistentVolumeClaim.ClaimName != fe.K8sClaim {
		t.Errorf("volume %+v mounted as %+v, want claim %s at %s", pod.Volumes, c.VolumeMounts, fe.K8sClaim, fe.K8sMount)
	}
	if pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds < 120 {
		t.Errorf("terminationGracePeriodSeconds %v: a run needs time to checkpoint", pod.TerminationGracePeriodSeconds)
	}
	if name := job.Name; len(name) > 63 || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
		t.Errorf("job name %q is not a DNS label", name)
	}

	// Image, claim and mount come from the flags and are quoted.
	fe.K8sImage, fe.K8sClaim, fe.K8sMount, fe.K8sBackoff = "registry.example/shlpt-vk:v1 # x", "my-claim", "/data/sweeps", 0
	p2 := writeTestPlan(t, smallSpec(), fe)
	b, _ = os.ReadFile(filepath.Join(p2.Dir, K8sFile))
	var job2 batchv1.Job
	if err := yaml.UnmarshalStrict(b, &job2); err != nil {
		t.Fatal(err)
	}
	c = job2.Spec.Template.Spec.Containers[0]
	if c.Image != fe.K8sImage || c.Command[3] != "/data/sweeps/"+filepath.Base(p2.Dir) ||
		job2.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim.ClaimName != "my-claim" || *job2.Spec.BackoffLimitPerIndex != 0 {
		t.Errorf("flags not applied: image %q command %q", c.Image, c.Command)
	}
}

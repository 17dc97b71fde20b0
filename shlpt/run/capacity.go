package run

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/shlpt-vk/shlpt-vk/gpu"
)

// deviceCapacity is the memory a device can give tensors: its largest
// device-local heap, or for a CPU device (whose "device memory" is host
// memory, and whose heap size is nominal) the larger of that and the
// host's memory.
func deviceCapacity(info gpu.DeviceInfo) int64 {
	var heap int64
	for _, h := range info.Heaps {
		if h.DeviceLocal && int64(h.Size) > heap {
			heap = int64(h.Size)
		}
	}
	if info.Type == gpu.TypeCPU {
		heap = max(heap, hostMemory())
	}
	return heap
}

// hostMemory is MemTotal of /proc/meminfo in bytes (0 when unknown).
func hostMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kb int64
		if n, _ := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); n == 1 {
			return kb << 10
		}
	}
	return 0
}

// checkMemory refuses a method whose estimated device memory (its
// registration's estimate, for the methods that train every weight) the
// device cannot hold.
func (r *runner) checkMemory() error {
	cfg := &r.cfg
	spec, err := cfg.Spec()
	if err != nil {
		return err
	}
	L, T := 1, 1
	for _, td := range r.data {
		L, T = max(L, td.inputLen), max(T, td.task.TargetLen)
	}
	est := spec.Memory(cfg.Settings, r.m.Config, cfg.BatchSize, L, T)
	if est == nil {
		return nil
	}
	what := cfg.Method
	if spec.FullWeight {
		what += " trains every weight and"
	}
	info := r.e.Device().Info()
	if capacity := deviceCapacity(info); est.Total > capacity {
		return fmt.Errorf("%s needs an estimated %s of device memory at batch %d with inputs of %d tokens; %s has %.1f GiB",
			what, est, cfg.BatchSize, L, strings.TrimSpace(info.Name), float64(capacity)/(1<<30))
	}
	if spec.FullWeight {
		r.rep.Logf("every weight trained (%s): estimated device memory %s", cfg.Method, est)
	} else {
		r.rep.Logf("%s: estimated device memory %s", cfg.Method, est)
	}
	return nil
}

package serve

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/shlpt-vk/shlpt-vk/shlpt/tasks"
)

// BenchmarkPass times forward passes of classification rows spread over
// the test runs' four tasks, eagerly and through the recorded encoder
// program of the shape bucket, the two alternating so that both see the
// same machine: the medians in ms and their ratio, recorded / eager
// (docs/performance.md#serving):
//
//	go test ./shlpt/serve -run '^$' -bench Pass -benchtime 20x
func BenchmarkPass(b *testing.B) {
	a, p := testRuns(b)
	e := newEngine(b)
	var servers []*Server
	for _, programs := range []int{0, 8} {
		s, err := New(Options{Sources: []string{a, p}, Engine: e, Programs: programs, MaxBatch: 64})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		servers = append(servers, s)
	}
	names := taskNames(servers[0].tasks)
	for _, n := range []int{1, 8, 32} {
		rows := func(s *Server) []*job {
			var js []*job
			for i := 0; i < n; i++ {
				t := s.tasks[names[i%len(names)]]
				enc, err := tasks.EncodeLen(s.tok, tasks.Example{Input: fmt.Sprintf("input %d of a batch, a few words long", i)}, t.Card.MaxInputLen, t.Card.TargetLen)
				if err != nil {
					b.Fatal(err)
				}
				js = append(js, &job{ctx: context.Background(), done: func() {}, kind: classify, task: t, ids: enc.Input})
			}
			return js
		}
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			ms := make([][]float64, len(servers))
			for i := -1; i < b.N; i++ { // i = -1 records the program
				for k, s := range servers {
					js := rows(s)
					start := time.Now()
					if err := s.compute(js); err != nil {
						b.Fatal(err)
					}
					if i >= 0 {
						ms[k] = append(ms[k], float64(time.Since(start).Microseconds())/1000)
					}
				}
			}
			med := func(v []float64) float64 { sort.Float64s(v); return v[len(v)/2] }
			eager, recorded := med(ms[0]), med(ms[1])
			b.ReportMetric(eager, "eager-ms")
			b.ReportMetric(recorded, "recorded-ms")
			b.ReportMetric(recorded/eager, "recorded/eager")
		})
	}
}

package tasks

import (
	"fmt"
	"strings"
)

// Sequence is a named order of tasks from the reference (section 0).
type Sequence struct {
	// Name is shlpt-vk's name: order1..order6 or nt1..nt3.
	Name string
	// Reference is the reference code's name (scl_seq1, long_seq1, dis_seq1...).
	Reference string
	// Benchmark says which experiment the sequence belongs to.
	Benchmark string
	// Tasks are canonical task names in training order.
	Tasks []string
}

const (
	standardCL  = "Standard CL"
	largeNumber = "Large Number of Tasks"
	negTransfer = "Negative Transfer Benchmark"
)

var sequences = []Sequence{
	{"order1", "scl_seq1", standardCL, []string{"dbpedia", "amazon", "yahoo", "ag"}},
	{"order2", "scl_seq2", standardCL, []string{"dbpedia", "amazon", "ag", "yahoo"}},
	{"order3", "scl_seq3", standardCL, []string{"yahoo", "amazon", "ag", "dbpedia"}},
	{"order4", "long_seq1", largeNumber, strings.Fields("mnli cb wic copa qqp boolq rte imdb yelp amazon sst2 dbpedia ag multirc yahoo")},
	{"order5", "long_seq2", largeNumber, strings.Fields("multirc boolq wic mnli cb copa qqp rte imdb sst2 dbpedia ag yelp amazon yahoo")},
	{"order6", "long_seq3", largeNumber, strings.Fields("yelp amazon mnli cb copa qqp rte imdb sst2 dbpedia ag yahoo multirc boolq wic")},
	{"nt1", "dis_seq1", negTransfer, []string{"yahoo", "rte", "qqp", "cb", "mnli"}},
	{"nt2", "dis_seq2", negTransfer, []string{"qqp", "rte", "squad", "mnli", "cb"}},
	{"nt3", "dis_seq3", negTransfer, []string{"multirc", "rte", "squad", "wic", "mnli"}},
}

// Sequences returns every named task sequence in a fixed order.
func Sequences() []Sequence {
	out := make([]Sequence, len(sequences))
	for i, s := range sequences {
		s.Tasks = append([]string(nil), s.Tasks...)
		out[i] = s
	}
	return out
}

// LookupSequence returns the sequence with the given shlpt-vk or reference
// name.
func LookupSequence(name string) (Sequence, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	var names []string
	for _, s := range Sequences() {
		if s.Name == n || s.Reference == n {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return Sequence{}, fmt.Errorf("unknown task sequence %q (expected one of %s, or the reference's scl_seqN, long_seqN, dis_seqN)",
		name, strings.Join(names, ", "))
}

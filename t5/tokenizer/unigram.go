package tokenizer

import "sort"

// unigram segments normalized text into pieces the way SentencePiece's
// unigram model does (Model::EncodeOptimized): a Viterbi search over all
// vocabulary pieces that occur in the text, scores summed in float32, ties
// kept by the first candidate, one unknown node per character that no
// single-character piece covers, and consecutive unknowns merged into one.
//
// sugarme v0.3.0's Unigram model adds a length bonus of 0.1 per byte to every
// piece and ignores pieces longer than 20 bytes, so its segmentation differs
// from SentencePiece's; this replaces it.
type unigram struct {
	trie     pieceTrie
	scores   []float32
	unkID    int
	unkScore float32
}

// pieceTrie is a byte trie of the vocabulary pieces in flat arrays: the
// children of node i have labels labels[first[i]:first[i+1]] (sorted) and
// node numbers kids[first[i]:first[i+1]]; value[i] is the id of the piece
// ending at node i, or -1. Node 0 is the root.
type pieceTrie struct {
	first  []int32
	labels []byte
	kids   []int32
	value  []int32
}

type trieEntry struct {
	piece string
	id    int32
}

// newPieceTrie builds the trie breadth-first over the sorted pieces, so that
// the children of each node are numbered and stored contiguously.
func newPieceTrie(entries []trieEntry) pieceTrie {
	sort.Slice(entries, func(i, j int) bool { return entries[i].piece < entries[j].piece })
	type item struct{ lo, hi, depth int }
	t := pieceTrie{value: []int32{-1}}
	queue := []item{{0, len(entries), 0}}
	for node := 0; node < len(queue); node++ {
		it := queue[node]
		t.first = append(t.first, int32(len(t.labels)))
		lo := it.lo
		if lo < it.hi && len(entries[lo].piece) == it.depth {
			t.value[node] = entries[lo].id
			lo++
		}
		for lo < it.hi {
			c := entries[lo].piece[it.depth]
			hi := lo + 1
			for hi < it.hi && entries[hi].piece[it.depth] == c {
				hi++
			}
			t.labels = append(t.labels, c)
			t.kids = append(t.kids, int32(len(queue)))
			t.value = append(t.value, -1)
			queue = append(queue, item{lo, hi, it.depth + 1})
			lo = hi
		}
	}
	t.first = append(t.first, int32(len(t.labels)))
	return t
}

// child returns the child of node along byte c, or -1.
func (t *pieceTrie) child(node int32, c byte) int32 {
	lo, hi := int(t.first[node]), int(t.first[node+1])
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if t.labels[mid] < c {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < int(t.first[node+1]) && t.labels[lo] == c {
		return t.kids[lo]
	}
	return -1
}

// newUnigram builds the model over pieces; pieces with matchable[id] false
// (control and added tokens) are left out of the search, as SentencePiece
// leaves control symbols out of its trie.
func newUnigram(pieces []string, scores []float32, matchable []bool, unkID int) *unigram {
	u := &unigram{scores: scores, unkID: unkID}
	minScore := float32(0)
	first := true
	var entries []trieEntry
	seen := map[string]bool{}
	for id, p := range pieces {
		if !matchable[id] || p == "" || seen[p] {
			continue
		}
		seen[p] = true
		entries = append(entries, trieEntry{p, int32(id)})
		if first || scores[id] < minScore {
			minScore = scores[id]
			first = false
		}
	}
	u.trie = newPieceTrie(entries)
	const unkPenalty = 10 // SentencePiece's kUnkPenalty
	u.unkScore = minScore - unkPenalty
	return u
}

type pathNode struct {
	id       int32
	score    float32
	startsAt int32
}

// encode appends the ids of the best segmentation of s to ids.
func (u *unigram) encode(s string, ids []int) []int {
	n := len(s)
	if n == 0 {
		return ids
	}
	best := make([]pathNode, n+1)
	for i := range best {
		best[i].startsAt = -1
	}
	for start := 0; start < n; {
		here := best[start].score
		charLen := min(oneCharLen(s[start]), n-start)
		hasSingle := false
		node := int32(0)
		for pos := start; pos < n; pos++ {
			child := u.trie.child(node, s[pos])
			if child < 0 {
				break
			}
			node = child
			id := u.trie.value[node]
			if id < 0 {
				continue
			}
			end := pos + 1
			// SentencePiece's score here has type double (the conditional
			// expression that picks it mixes in a double literal), so the
			// candidate is compared in double precision against the stored
			// float. Which of two equal-scored segmentations wins depends on
			// that rounding; float32 throughout disagrees on about 1 line in
			// 1,300.
			cand := float64(u.scores[id]) + float64(here)
			if t := &best[end]; t.startsAt == -1 || cand > float64(t.score) {
				*t = pathNode{id: id, score: float32(cand), startsAt: int32(start)}
			}
			if end-start == charLen {
				hasSingle = true
			}
		}
		if !hasSingle {
			cand := u.unkScore + here
			if t := &best[start+charLen]; t.startsAt == -1 || cand > t.score {
				*t = pathNode{id: int32(u.unkID), score: cand, startsAt: int32(start)}
			}
		}
		start += charLen
	}
	// Backtrack, then append in order, merging runs of unknowns.
	var rev []int32
	for end := n; end > 0; end = int(best[end].startsAt) {
		rev = append(rev, best[end].id)
	}
	for i := len(rev) - 1; i >= 0; i-- {
		id := int(rev[i])
		if id == u.unkID && len(ids) > 0 && ids[len(ids)-1] == u.unkID && i != len(rev)-1 {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

// oneCharLen is SentencePiece's string_util::OneCharLen: the length of the
// UTF-8 sequence that starts with byte b, judged by b alone.
func oneCharLen(b byte) int {
	return int("\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x02\x03\x04"[b>>4])
}

// Package tokenizer turns text into T5 token ids and back, from a HuggingFace
// tokenizer.json (Unigram model, Precompiled normalizer, Metaspace
// pre-tokenizer, a template that appends </s>).
//
// The ids equal those of SentencePiece (spm_encode --output_format=id with the
// same spiece.model) followed by the template's </s> = 1, and added tokens
// such as <extra_id_0> are recognized in the text as HuggingFace's fast
// tokenizer does. tokenizer.json is read with github.com/sugarme/tokenizer,
// but its v0.3.0 encoding pipeline does not reproduce SentencePiece for T5
// (extra "▁" tokens for runs of spaces and tabs, duplicated text after
// remapped characters, a Viterbi with a length bonus, added-token lstrip and
// rstrip ignored), so normalization, segmentation and added-token splitting
// are done here, following SentencePiece's normalizer.cc and
// unigram_model.cc and HuggingFace's AddedVocabulary.
package tokenizer

//go:generate go run ./gengolden -o testdata/spm_golden.jsonl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"unicode"

	sugarme "github.com/sugarme/tokenizer"

	"github.com/shlpt-vk/shlpt-vk/internal/limitio"
)

// FileName is the file Load reads from the tokenizer folder.
const FileName = "tokenizer.json"

// ConfigFileName is the optional file Load reads for
// clean_up_tokenization_spaces.
const ConfigFileName = "tokenizer_config.json"

// Tokenizer encodes text to ids and decodes ids to text. It is immutable
// after Load and safe for concurrent use.
type Tokenizer struct {
	path    string
	pieces  []string // by id; added tokens included
	ids     map[string]int
	special []bool // by id: skipped by Decode
	model   *unigram
	norm    *charsmap
	added   addedTokens
	prepend string // "always", "first" or "never": where "▁" is prepended
	decPrep string // the decoder's prepend scheme
	prefix  []int  // template ids before the text
	suffix  []int  // template ids after the text (T5: </s>)
	cleanUp bool   // HF clean_up_tokenization_spaces
}

// Size limits of the files Load reads: T5's tokenizer.json is 2.4 MB (mT5's
// 16 MB) and its tokenizer_config.json 21 KB.
const (
	MaxFileSize   = 64 << 20
	MaxConfigSize = 1 << 20
)

// Load reads dir/tokenizer.json, and dir/tokenizer_config.json when present
// for the decoding option clean_up_tokenization_spaces. A file that is not a
// regular file, or is larger than MaxFileSize (MaxConfigSize), is an error
// naming it.
func Load(dir string) (*Tokenizer, error) {
	path := filepath.Join(dir, FileName)
	data, err := limitio.ReadFile(path, MaxFileSize, "a "+FileName)
	if err != nil {
		return nil, err
	}
	t, err := parse(path, data)
	if err != nil {
		return nil, err
	}
	cpath := filepath.Join(dir, ConfigFileName)
	if raw, err := limitio.ReadFile(cpath, MaxConfigSize, "a "+ConfigFileName); err == nil {
		if t.cleanUp, err = parseConfig(cpath, raw, t.cleanUp); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return t, nil
}

// parse reads the JSON of a tokenizer.json; path names it in messages.
func parse(path string, data []byte) (*Tokenizer, error) {
	var cfg sugarme.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	t, err := fromConfig(&cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	t.path = path
	return t, nil
}

// parseConfig reads clean_up_tokenization_spaces from the JSON of a
// tokenizer_config.json; cleanUp is returned when it is absent.
func parseConfig(path string, data []byte, cleanUp bool) (bool, error) {
	var tc struct {
		CleanUp *bool `json:"clean_up_tokenization_spaces"`
	}
	if err := json.Unmarshal(data, &tc); err != nil {
		return false, fmt.Errorf("%s: %v", path, err)
	}
	if tc.CleanUp != nil {
		return *tc.CleanUp, nil
	}
	return cleanUp, nil
}

func fromConfig(cfg *sugarme.Config) (*Tokenizer, error) {
	t := &Tokenizer{ids: map[string]int{}}
	scores, unkID, err := t.loadModel(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("model: %v", err)
	}
	if err := t.loadAdded(cfg.AddedTokens); err != nil {
		return nil, fmt.Errorf("added_tokens: %v", err)
	}
	matchable := make([]bool, len(t.pieces))
	for id := range matchable {
		matchable[id] = !t.added.has(id)
	}
	t.model = newUnigram(t.pieces, scores, matchable, unkID)
	if err := t.loadNormalizer(cfg.Normalizer); err != nil {
		return nil, fmt.Errorf("normalizer: %v", err)
	}
	if t.norm == nil {
		return nil, errors.New("normalizer: no Precompiled charsmap")
	}
	if t.prepend, err = metaspaceScheme(cfg.PreTokenizer); err != nil {
		return nil, fmt.Errorf("pre_tokenizer: %v", err)
	}
	if t.decPrep, err = metaspaceScheme(cfg.Decoder); err != nil {
		return nil, fmt.Errorf("decoder: %v", err)
	}
	if err := t.loadTemplate(cfg.PostProcessor); err != nil {
		return nil, fmt.Errorf("post_processor: %v", err)
	}
	return t, nil
}

// loadModel reads the Unigram vocabulary into t.pieces and t.ids and
// returns the scores and the unknown id.
func (t *Tokenizer) loadModel(m map[string]any) ([]float32, int, error) {
	if m["type"] != "Unigram" {
		return nil, 0, fmt.Errorf("type %v is not Unigram", m["type"])
	}
	if fb, _ := m["byte_fallback"].(bool); fb {
		return nil, 0, errors.New("byte_fallback is not supported")
	}
	vocab, ok := m["vocab"].([]any)
	if !ok || len(vocab) == 0 {
		return nil, 0, errors.New("vocab missing or empty")
	}
	scores := make([]float32, len(vocab))
	for id, e := range vocab {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, 0, fmt.Errorf("vocab entry %d is not [piece, score]", id)
		}
		piece, ok1 := pair[0].(string)
		score, ok2 := pair[1].(float64)
		if !ok1 || !ok2 || math.IsNaN(score) {
			return nil, 0, fmt.Errorf("vocab entry %d is not [piece, score]", id)
		}
		if _, dup := t.ids[piece]; !dup {
			t.ids[piece] = id
		}
		t.pieces = append(t.pieces, piece)
		// SentencePiece stores scores as float32; tokenizer.json prints them
		// as float64, from which the float32 is recovered exactly.
		scores[id] = float32(score)
	}
	unk, ok := m["unk_id"].(float64)
	if !ok || unk != math.Trunc(unk) || unk < 0 || int(unk) >= len(t.pieces) {
		return nil, 0, fmt.Errorf("unk_id %v is not a vocabulary id", m["unk_id"])
	}
	return scores, int(unk), nil
}

// loadAdded reads the added tokens (T5: <pad>, </s>, <unk>, <extra_id_N>).
// Every id must have a token, so an added token's id is below the number of
// vocabulary pieces plus the number of added tokens.
func (t *Tokenizer) loadAdded(tokens []sugarme.TokenConfig) error {
	t.special = make([]bool, len(t.pieces))
	limit := int64(len(t.pieces)) + int64(len(tokens))
	for _, a := range tokens {
		if a.Content == "" {
			return fmt.Errorf("token with id %d has no content", a.Id)
		}
		if a.Id < 0 || a.Id >= limit {
			return fmt.Errorf("token %q has id %d, outside 0..%d (the %d vocabulary pieces and %d added tokens)",
				a.Content, a.Id, limit-1, len(t.pieces), len(tokens))
		}
		if a.Normalized || a.SingleWord {
			return fmt.Errorf("token %q: normalized and single_word added tokens are not supported", a.Content)
		}
		id := int(a.Id)
		for id >= len(t.pieces) {
			t.pieces = append(t.pieces, "")
			t.special = append(t.special, false)
		}
		if t.pieces[id] != "" && t.pieces[id] != a.Content {
			return fmt.Errorf("token %q has id %d, which the vocabulary gives to %q", a.Content, id, t.pieces[id])
		}
		t.pieces[id] = a.Content
		t.ids[a.Content] = id
		t.special[id] = a.Special
		t.added.add(addedToken{content: a.Content, id: id, lstrip: a.Lstrip, rstrip: a.Rstrip})
	}
	for id, p := range t.pieces {
		if p == "" {
			return fmt.Errorf("id %d has no token", id)
		}
	}
	t.added.sort()
	return nil
}

// loadNormalizer takes the charsmap of a Precompiled normalizer and accepts
// the Strip and whitespace-collapsing Replace steps that HF's converter adds
// to mirror SentencePiece's remove_extra_whitespaces, which normalize
// implements. Anything else would change the text in ways normalize does not
// follow, so it is an error.
func (t *Tokenizer) loadNormalizer(n map[string]any) error {
	if n == nil {
		return nil
	}
	switch n["type"] {
	case "Sequence":
		list, _ := n["normalizers"].([]any)
		for _, e := range list {
			m, ok := e.(map[string]any)
			if !ok {
				return errors.New("Sequence entry is not an object")
			}
			if err := t.loadNormalizer(m); err != nil {
				return err
			}
		}
		return nil
	case "Precompiled":
		s, ok := n["precompiled_charsmap"].(string)
		if !ok {
			return errors.New("Precompiled without precompiled_charsmap")
		}
		blob, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return fmt.Errorf("precompiled_charsmap: %v", err)
		}
		if t.norm, err = parseCharsmap(blob); err != nil {
			return err
		}
		return nil
	case "Strip":
		return nil
	case "Replace":
		pat, _ := n["pattern"].(map[string]any)
		content, _ := n["content"].(string)
		re, _ := pat["Regex"].(string)
		if (re == " {2,}" || re == "\\s+" || re == " +") && (content == space || content == " ") {
			return nil
		}
		return fmt.Errorf("Replace %v → %q is not SentencePiece whitespace handling", pat, content)
	}
	return fmt.Errorf("normalizer type %v is not supported", n["type"])
}

// metaspaceScheme returns where a Metaspace step prepends "▁": "always",
// "first" or "never". A Sequence may hold a WhitespaceSplit before it, which
// changes nothing after SentencePiece normalization.
func metaspaceScheme(p map[string]any) (string, error) {
	if p == nil {
		return "", errors.New("missing; want Metaspace")
	}
	switch p["type"] {
	case "Sequence":
		var list []any
		for _, key := range []string{"pretokenizers", "decoders"} {
			if l, ok := p[key].([]any); ok {
				list = l
			}
		}
		scheme := ""
		for _, e := range list {
			m, _ := e.(map[string]any)
			switch m["type"] {
			case "WhitespaceSplit":
			case "Metaspace":
				s, err := metaspaceScheme(m)
				if err != nil {
					return "", err
				}
				scheme = s
			default:
				return "", fmt.Errorf("%v in a Sequence is not supported", m["type"])
			}
		}
		if scheme == "" {
			return "", errors.New("Sequence without Metaspace")
		}
		return scheme, nil
	case "Metaspace":
		if r, _ := p["replacement"].(string); r != space {
			return "", fmt.Errorf("Metaspace replacement %q is not %q", r, space)
		}
		if s, ok := p["prepend_scheme"].(string); ok {
			if s != "always" && s != "first" && s != "never" {
				return "", fmt.Errorf("prepend_scheme %q is not supported", s)
			}
			return s, nil
		}
		if add, ok := p["add_prefix_space"].(bool); ok && !add {
			return "never", nil
		}
		return "always", nil
	}
	return "", fmt.Errorf("type %v is not supported; want Metaspace", p["type"])
}

// loadTemplate reads the single-sequence template of a TemplateProcessing
// post-processor into the ids around the text.
func (t *Tokenizer) loadTemplate(p map[string]any) error {
	if p == nil {
		return nil
	}
	if p["type"] != "TemplateProcessing" {
		return fmt.Errorf("type %v is not supported", p["type"])
	}
	specials, _ := p["special_tokens"].(map[string]any)
	single, _ := p["single"].([]any)
	seenText := false
	for _, e := range single {
		m, _ := e.(map[string]any)
		if _, ok := m["Sequence"]; ok {
			if seenText {
				return errors.New("single template holds two sequences")
			}
			seenText = true
			continue
		}
		st, ok := m["SpecialToken"].(map[string]any)
		if !ok {
			return fmt.Errorf("single template entry %v is not supported", m)
		}
		name, _ := st["id"].(string)
		spec, _ := specials[name].(map[string]any)
		ids, _ := spec["ids"].([]any)
		if len(ids) == 0 {
			return fmt.Errorf("special token %q has no ids", name)
		}
		for _, v := range ids {
			f, ok := v.(float64)
			if !ok || f != math.Trunc(f) || f < 0 || int(f) >= len(t.pieces) {
				return fmt.Errorf("special token %q has id %v outside the vocabulary", name, v)
			}
			if seenText {
				t.suffix = append(t.suffix, int(f))
			} else {
				t.prefix = append(t.prefix, int(f))
			}
		}
	}
	if !seenText {
		return errors.New("single template has no sequence")
	}
	return nil
}

// Path returns the tokenizer.json the tokenizer was loaded from.
func (t *Tokenizer) Path() string { return t.path }

// VocabSize returns the number of ids (T5: 32,100; the model's embedding
// table has 32,128 rows, the last 28 unused).
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// TokenID returns the id of a vocabulary piece or added token, such as
// "▁the", "</s>" or "<extra_id_0>".
func (t *Tokenizer) TokenID(token string) (int, bool) {
	id, ok := t.ids[token]
	return id, ok
}

// Token returns the piece or added token with the given id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.pieces) {
		return "", false
	}
	return t.pieces[id], true
}

// IsSpecial reports whether id is a special token (T5: <pad>, </s>, <unk>
// and the <extra_id_N> sentinels), which Decode skips.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// Encode returns the ids of text followed by the template's suffix (T5: the
// ids end with </s> = 1). Added tokens in the text, such as "<extra_id_0>",
// encode to their own ids; the text between them is normalized and
// segmented as SentencePiece does.
func (t *Tokenizer) Encode(text string) ([]int, error) {
	ids := make([]int, 0, len(text)/3+len(t.prefix)+len(t.suffix)+1)
	ids = append(ids, t.prefix...)
	for _, seg := range t.added.split(text) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		prefix := t.prepend == "always" || t.prepend == "first" && seg.start == 0
		ids = t.model.encode(t.norm.normalize(text[seg.start:seg.end], prefix), ids)
	}
	return append(ids, t.suffix...), nil
}

// EncodeBatch encodes each text, in parallel for large batches.
func (t *Tokenizer) EncodeBatch(texts []string) ([][]int, error) {
	out := make([][]int, len(texts))
	workers := min(runtime.GOMAXPROCS(0), (len(texts)+63)/64)
	if workers <= 1 {
		for i, s := range texts {
			ids, err := t.Encode(s)
			if err != nil {
				return nil, fmt.Errorf("text %d: %v", i, err)
			}
			out[i] = ids
		}
		return out, nil
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(texts); i += workers {
				ids, err := t.Encode(texts[i])
				if err != nil {
					errs[w] = fmt.Errorf("text %d: %v", i, err)
					return
				}
				out[i] = ids
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Decode returns the text of ids as HuggingFace's decode(ids,
// skip_special_tokens=True) does: special tokens (<pad>, </s>, <unk>,
// <extra_id_N>) and ids outside the vocabulary are skipped, "▁" becomes a
// space, the first token loses its "▁", and when tokenizer_config.json sets
// clean_up_tokenization_spaces (T5 does) spaces before punctuation and
// contractions are removed (" ." → ".", " n't" → "n't", ...).
func (t *Tokenizer) Decode(ids []int) string {
	var b strings.Builder
	first := true
	for _, id := range ids {
		if id < 0 || id >= len(t.pieces) || t.special[id] {
			continue
		}
		p := t.pieces[id]
		if first && t.decPrep != "never" {
			p = strings.ReplaceAll(p, space, "")
		} else {
			p = strings.ReplaceAll(p, space, " ")
		}
		first = false
		b.WriteString(p)
	}
	if t.cleanUp {
		return cleanUpSpaces(b.String())
	}
	return b.String()
}

// cleanUpSpaces is HF's PreTrainedTokenizerBase.clean_up_tokenization, in
// its order.
func cleanUpSpaces(s string) string {
	for _, r := range [][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

// addedToken is a token matched in the raw text before normalization.
type addedToken struct {
	content        string
	id             int
	lstrip, rstrip bool // absorb whitespace on that side
}

// addedTokens finds added tokens in text, leftmost first and longest at a
// position, as HF's AddedVocabulary does with its Aho-Corasick matcher.
type addedTokens struct {
	byFirst [256][]addedToken // by first byte, longest first
	ids     map[int]bool
}

func (a *addedTokens) add(tok addedToken) {
	if a.ids == nil {
		a.ids = map[int]bool{}
	}
	a.byFirst[tok.content[0]] = append(a.byFirst[tok.content[0]], tok)
	a.ids[tok.id] = true
}

func (a *addedTokens) sort() {
	for _, list := range a.byFirst {
		sort.SliceStable(list, func(i, j int) bool { return len(list[i].content) > len(list[j].content) })
	}
}

func (a *addedTokens) has(id int) bool { return a.ids[id] }

// segment is text[start:end], or an added token when id >= 0.
type segment struct {
	start, end int
	id         int
}

// split cuts text into plain segments and added tokens. An lstrip (rstrip)
// token takes the whitespace before (after) it, as in HF.
func (a *addedTokens) split(text string) []segment {
	var out []segment
	done := 0 // end of the last added token
	for i := 0; i < len(text); i++ {
		cands := a.byFirst[text[i]]
		if len(cands) == 0 {
			continue
		}
		for _, tok := range cands {
			if !strings.HasPrefix(text[i:], tok.content) {
				continue
			}
			start, end := i, i+len(tok.content)
			if tok.lstrip {
				start = max(done, len(strings.TrimRightFunc(text[:start], unicode.IsSpace)))
			}
			if tok.rstrip {
				end = len(text) - len(strings.TrimLeftFunc(text[end:], unicode.IsSpace))
			}
			if start > done {
				out = append(out, segment{start: done, end: start, id: -1})
			}
			out = append(out, segment{start: start, end: end, id: tok.id})
			done = end
			i = end - 1
			break
		}
	}
	if done < len(text) || len(out) == 0 {
		out = append(out, segment{start: done, end: len(text), id: -1})
	}
	return out
}

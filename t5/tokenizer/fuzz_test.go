package tokenizer

import (
	"testing"
)

// tinyJSON is a complete tokenizer.json of six pieces, an empty
// precompiled charsmap (a trie of one unit) and T5's template.
const tinyJSON = `{
 "added_tokens": [
  {"id": 0, "content": "<pad>", "special": true},
  {"id": 1, "content": "</s>", "special": true},
  {"id": 2, "content": "<unk>", "special": true},
  {"id": 6, "content": "<extra_id_0>", "special": true, "lstrip": true, "rstrip": true}],
 "normalizer": {"type": "Sequence", "normalizers": [
  {"type": "Precompiled", "precompiled_charsmap": "BAAAAAAAAAA="},
  {"type": "Strip"},
  {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}]},
 "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"}]},
 "post_processor": {"type": "TemplateProcessing",
  "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}],
  "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}},
 "decoder": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": true},
 "model": {"type": "Unigram", "unk_id": 2, "vocab": [
  ["<pad>", 0], ["</s>", 0], ["<unk>", 0], ["▁", -2.5], ["a", -3], ["▁a", -1.25]]}
}`

// FuzzTokenizerJSON checks that no tokenizer.json makes the loader panic,
// that whatever it accepts encodes text to ids in its vocabulary and
// decodes ids (in and out of it) without panicking, and that no
// tokenizer_config.json makes its reader panic.
func FuzzTokenizerJSON(f *testing.F) {
	f.Add([]byte(tinyJSON), "a  a<extra_id_0> b\tä", []byte(`{"clean_up_tokenization_spaces": true}`))
	f.Add([]byte(`{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0]]}, "added_tokens": [{"id": 2000000000, "content": "<x>"}]}`), "", []byte(`{}`))
	f.Add([]byte(`{"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0]]}, "normalizer": {"type": "Precompiled", "precompiled_charsmap": "/////wAAAAA="}}`), "x", []byte(`[]`))
	f.Add([]byte(`[]`), "x", []byte(`{"clean_up_tokenization_spaces": 1}`))
	f.Fuzz(func(t *testing.T, data []byte, text string, config []byte) {
		parseConfig("fuzz_config.json", config, false)
		tk, err := parse("fuzz.json", data)
		if err != nil {
			return
		}
		if len(text) > 1<<12 {
			text = text[:1<<12]
		}
		ids, err := tk.Encode(text)
		if err != nil {
			return
		}
		n := tk.VocabSize()
		for _, id := range ids {
			if id < 0 || id >= n {
				t.Fatalf("Encode(%q) gave id %d outside the %d ids", text, id, n)
			}
			if _, ok := tk.Token(id); !ok {
				t.Fatalf("id %d has no token", id)
			}
		}
		tk.Decode(append(ids, -1, n, n+100))
		tk.cleanUp = true
		tk.Decode(ids)
	})
}

// TestTinyTokenizer keeps FuzzTokenizerJSON's main seed a tokenizer that
// loads, so that the fuzzer starts from inside the accepted inputs.
func TestTinyTokenizer(t *testing.T) {
	tk, err := parse("tiny.json", []byte(tinyJSON))
	if err != nil {
		t.Fatal(err)
	}
	ids, err := tk.Encode("a  a<extra_id_0> b")
	if err != nil || len(ids) != 6 || ids[2] != 6 || ids[5] != 1 {
		t.Errorf("ids %v, %v", ids, err)
	}
}

"""Tests of the character-level ARDM text tokenizer."""

import pytest
import torch

from ardm_trl.data.text_tokenizer import ARDMTextTokenizer

IPA = ["ðə kˈat sˈat", "hɛlˈəʊ wˈɜːld"]


def test_round_trip_and_padding_id_zero():
    tokenizer = ARDMTextTokenizer.from_texts(IPA)
    ids = tokenizer.batch_encode(IPA)
    assert all(0 not in row and 1 not in row for row in ids)  # real characters never use <pad>/<unk>
    assert [tokenizer.decode(row) for row in ids] == IPA  # spaces kept: IPA word boundaries
    assert tokenizer.encode(IPA[0]) == ids[0]
    padded = tokenizer(IPA)["text_input_ids"]
    assert tokenizer.batch_decode(padded, skip_special_tokens=True) == IPA
    assert tokenizer.vocab_size == 2 + len(set("".join(IPA)))


def test_ids_do_not_depend_on_text_order():
    assert ARDMTextTokenizer.from_texts(IPA).id_to_token == ARDMTextTokenizer.from_texts(IPA[::-1]).id_to_token


def test_unknown_characters_map_to_unk():
    tokenizer = ARDMTextTokenizer.from_texts(["ab"])
    assert tokenizer.encode("aZb") == [2, tokenizer.unk_token_id, 3]


def test_call_pads_a_batch_for_the_ardm():
    tokenizer = ARDMTextTokenizer.from_texts(IPA)
    batch = tokenizer(["ab", "ðə"])
    assert batch["text_input_ids"].shape == (2, 2)
    batch = tokenizer(IPA)
    lengths = [len(t) for t in IPA]
    assert batch["text_attention_mask"].sum(-1).tolist() == lengths
    assert (batch["text_input_ids"][0, lengths[0]:] == tokenizer.pad_token_id).all()


def test_save_and_reload_give_identical_ids(tmp_path):
    tokenizer = ARDMTextTokenizer.from_texts(IPA)
    tokenizer.save_pretrained(tmp_path)
    reloaded = ARDMTextTokenizer.from_pretrained(tmp_path)
    assert reloaded.id_to_token == tokenizer.id_to_token
    assert torch.equal(reloaded(IPA)["text_input_ids"], tokenizer(IPA)["text_input_ids"])


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="single characters"):
        ARDMTextTokenizer(characters=["ab"])
    with pytest.raises(ValueError, match="repeat"):
        ARDMTextTokenizer(characters=["a", "a"])
    with pytest.raises(TypeError, match="characters="):
        ARDMTextTokenizer(["a", "b"])
    with pytest.raises(ValueError, match="characters"):
        ARDMTextTokenizer()
    with pytest.raises(ValueError, match="save_pretrained"):
        ARDMTextTokenizer.from_pretrained(tmp_path)


def test_auto_tokenizer_loads_it_from_an_ardm_folder(tmp_path):
    """A saved ARDM folder (config + weights + tokenizer) gives its tokenizer through `AutoTokenizer`, the way a
    user of transformers loads any model's tokenizer."""
    from conftest import tiny_ardm_config
    from transformers import AutoTokenizer

    from ardm_trl.models.ardm import ARDMForSpeechSynthesis

    tokenizer = ARDMTextTokenizer.from_texts(IPA)
    ARDMForSpeechSynthesis(tiny_ardm_config(text_vocab_size=tokenizer.vocab_size)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, ARDMTextTokenizer)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    assert torch.equal(loaded(IPA)["text_input_ids"], tokenizer(IPA)["text_input_ids"])

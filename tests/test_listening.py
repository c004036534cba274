"""CMOS listening tests: build (balanced hidden A/B sides), serve (answers appended whole), analyze (un-swapped CMOS
with a Student-t interval), the CLI, and the page driven end to end in a real headless Chromium."""

import json
import math
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ardm_trl.listening import (
    CHOICE_VALUES,
    TEST_TYPES,
    CMOSServer,
    analyze_cmos,
    build_cmos_test,
    cmos_table,
    load_key,
)
from ardm_trl.listening.cli import main as cli_main

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
RATE = 16000
# Preference for side A -> page choice.
LABEL_FOR_A = {value: label for label, value in CHOICE_VALUES.items()}


def _tone(path: Path, freq: float, seconds: float = 0.3) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)
    return path


def _items(root: Path, n: int, reference: bool = True) -> list[dict]:
    wavs = root / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        item = {"id": f"utt{i:02d}", "text": f"Sentence number {i}.",
                "audio_a_path": _tone(wavs / f"vgpo_{i}.wav", 440 + 10 * i),
                "audio_b_path": _tone(wavs / f"base_{i}.wav", 220 + 10 * i)}
        if reference:
            item["reference_path"] = _tone(wavs / f"prompt_{i}.wav", 330)
        items.append(item)
    return items


def _choice_for(score: int, system_side: str) -> str:
    """The page choice that gives the system under test `score`, given the side it played on."""
    return LABEL_FOR_A[score if system_side == "A" else -score]


def _post(url: str, payload) -> tuple[int, dict]:
    request = urllib.request.Request(url + "submit", data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def _num_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _sheet(key: dict, listener: str, scores: dict[str, int]) -> dict:
    answers = [{"item": item["id"], "choice": _choice_for(scores[item["id"]], item["system_side"])}
               for item in key["items"]]
    return {"test_id": key["test_id"], "test_type": key["test_type"], "listener": listener, "answers": answers}


# --------------------------------------------------------------------------------------------------------- build


@pytest.mark.parametrize("n", [10, 7])
def test_sides_are_balanced_seeded_and_recorded(tmp_path, n):
    items = _items(tmp_path, n)
    assignments = []
    for seed in range(4):
        test = build_cmos_test(items, tmp_path / f"t{seed}", seed=seed)
        key = load_key(test.output_dir)
        sides = {item["id"]: item["system_side"] for item in key["items"]}
        assert sorted(sides) == sorted(item["id"] for item in items)
        assert sorted(sides.values()).count("A") in (n // 2, n - n // 2)  # balanced, odd item at random
        by_id = {item["id"]: item for item in items}
        for entry in key["items"]:  # the side the key names plays the system's own file
            system_file = entry["audio_a"] if entry["system_side"] == "A" else entry["audio_b"]
            baseline_file = entry["audio_b"] if entry["system_side"] == "A" else entry["audio_a"]
            assert (test.output_dir / system_file).read_bytes() == by_id[entry["id"]]["audio_a_path"].read_bytes()
            assert (test.output_dir / baseline_file).read_bytes() == by_id[entry["id"]]["audio_b_path"].read_bytes()
            assert (test.output_dir / entry["reference"]).read_bytes() == by_id[entry["id"]]["reference_path"].read_bytes()
        assignments.append(sides)
    assert len({tuple(sorted(a.items())) for a in assignments}) > 1  # seeds draw different sides
    again = load_key(build_cmos_test(items, tmp_path / "again", seed=0).output_dir)
    assert {i["id"]: i["system_side"] for i in again["items"]} == assignments[0]  # same seed, same sides


def test_page_hides_the_key(tmp_path):
    items = _items(tmp_path, 6)
    test = build_cmos_test(items, tmp_path / "test", test_type="similarity", system_name="VGPO-A3",
                           baseline_name="BaseModel")
    page = test.index_path.read_text()
    key = load_key(test.output_dir)
    for secret in ("system_side", "VGPO-A3", "BaseModel", "vgpo_", "base_", "prompt_", str(tmp_path)):
        assert secret not in page
    assert all(name.startswith("item") for name in (p.name for p in (test.output_dir / "audio").iterdir()))
    assert page.count('type="radio"') == 5 * 6 and page.count("Reference Audio") == 6
    assert key["test_id"] in page and "<script src" not in page and "http" not in page.split("<script>")[0]
    with CMOSServer(test.output_dir) as server:
        assert _get(server.url)[0] == 200
        assert _get(server.url + key["items"][0]["audio_a"])[0] == 200
        for hidden in ("key.json", "answers.jsonl", "audio/../key.json", "audio/%2e%2e/key.json", "wavs/vgpo_0.wav"):
            assert _get(server.url + hidden)[0] == 404, hidden


@pytest.mark.parametrize("test_type", list(TEST_TYPES))
def test_page_wording_follows_the_paper(tmp_path, test_type):
    spec = TEST_TYPES[test_type]
    page = build_cmos_test(_items(tmp_path, 2), tmp_path / "t", test_type=test_type).index_path.read_text()
    assert spec.title in page and spec.question in page and "Listen to the reference audio first." in page
    assert all(label in page for label in ("A +2", "A +1", "No Preference", "B +1", "B +2"))
    if test_type != "similarity":  # without references, no reference step and no reference player
        page = build_cmos_test(_items(tmp_path, 2, reference=False), tmp_path / "n", test_type=test_type)
        page = page.index_path.read_text()
        assert "Reference Audio" not in page and "reference audio first" not in page and 'data-role="reference"' not in page


def test_bad_inputs_raise(tmp_path):
    items = _items(tmp_path, 3)
    with pytest.raises(ValueError, match="reference_path"):
        build_cmos_test(_items(tmp_path / "noref", 2, reference=False), tmp_path / "a", test_type="similarity")
    with pytest.raises(ValueError, match="Unknown test_type"):
        build_cmos_test(items, tmp_path / "b", test_type="quality")
    with pytest.raises(ValueError, match="twice"):
        build_cmos_test([items[0], items[0]], tmp_path / "c")
    with pytest.raises(ValueError, match="does not exist"):
        build_cmos_test([{**items[0], "audio_b_path": tmp_path / "missing.wav"}], tmp_path / "d")
    (tmp_path / "notaudio.wav").write_text("hello")
    with pytest.raises(ValueError, match="cannot be read as audio"):
        build_cmos_test([{**items[0], "audio_a_path": tmp_path / "notaudio.wav"}], tmp_path / "e")
    with pytest.raises(ValueError, match="no `text`"):
        build_cmos_test([{**items[0], "text": " "}], tmp_path / "f")
    with pytest.raises(ValueError, match="for every item or for none"):
        build_cmos_test([items[0], {**items[1], "reference_path": None}], tmp_path / "g")
    build_cmos_test(items, tmp_path / "h")
    with pytest.raises(ValueError, match="already holds a test"):
        build_cmos_test(items, tmp_path / "h")
    (tmp_path / "h" / "answers.jsonl").write_text("{}\n")
    build_cmos_test(items, tmp_path / "h", overwrite=True)  # replaces the test and its answers
    assert not (tmp_path / "h" / "answers.jsonl").exists()


# ------------------------------------------------------------------------------------------------------- analyze


def _hand_made_test(root: Path) -> Path:
    root.mkdir()
    key = {"format": "ardm_trl.cmos/1", "test_id": "t1", "test_type": "naturalness", "system_name": "VGPO",
           "baseline_name": "Base", "seed": 0,
           "items": [{"id": f"i{k}", "system_side": side} for k, side in enumerate("ABAB")]}
    (root / "key.json").write_text(json.dumps(key))
    return root


def _write_answers(test_dir: Path, sheets: list[tuple[str, list[str]]], test_id: str = "t1") -> None:
    lines = [json.dumps({"test_id": test_id, "listener": listener,
                         "answers": [{"item": f"i{k}", "choice": c} for k, c in enumerate(choices)]})
             for listener, choices in sheets]
    (test_dir / "answers.jsonl").write_text("\n".join(lines) + "\n")


def test_analyze_unswaps_and_gives_exact_cmos_and_ci(tmp_path):
    test_dir = _hand_made_test(tmp_path / "t")
    # sides A B A B; a "B" choice on a B-side item favours the system.
    _write_answers(test_dir, [("early", ["B+2"] * 4),  # replaced by the same listener's later sheet
                              ("l1", ["A+2", "B+1", "0", "A+1"]),  # system scores +2 +1 0 -1
                              ("l2", ["A+2", "B+2", "A+1", "0"]),  # system scores +2 +2 +1 0
                              ("early", ["A+2", "A+2", "A+2", "A+2"])])  # +2 -2 +2 -2
    result = analyze_cmos(test_dir)
    scores = [2, 1, 0, -1, 2, 2, 1, 0, 2, -2, 2, -2]
    mean = sum(scores) / 12
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / 11)
    t_975_11 = 2.200985160091639  # Student-t 97.5% quantile, 11 degrees of freedom
    assert result.cmos == pytest.approx(0.5833333333333334)
    assert result.cmos == pytest.approx(mean) and result.std == pytest.approx(std)
    assert result.half_width == pytest.approx(t_975_11 * std / math.sqrt(12), rel=1e-9)
    assert (result.ci_low, result.ci_high) == pytest.approx((mean - result.half_width, mean + result.half_width))
    assert (result.num_ratings, result.num_items, result.num_listeners) == (12, 4, 3)
    assert result.per_listener == pytest.approx({"l1": 0.5, "l2": 1.25, "early": 0.0})
    assert str(result) == f"0.58 ± {result.half_width:.2f}"
    # the raw A-side preference would have been different: the key was applied
    assert result.cmos != pytest.approx(np.mean([2, -1, 0, 1, 2, -2, 1, 0, 2, -2, 2, -2]))
    table = cmos_table([result])
    assert "| N-CMOS | VGPO | Base | 0.58 ± " in table and "| 12 | 4 | 3 |" in table
    wider = analyze_cmos(test_dir, confidence=0.99)
    assert wider.cmos == result.cmos and wider.half_width > result.half_width


def test_analyze_rejects_bad_answers(tmp_path):
    test_dir = _hand_made_test(tmp_path / "t")
    with pytest.raises(ValueError, match="no answers were submitted"):
        analyze_cmos(test_dir)
    cases = {
        "unknown item": [{"item": f"i{k}", "choice": "0"} for k in (0, 1, 2, 7)],
        "not answered": [{"item": f"i{k}", "choice": "0"} for k in (0, 1, 2)],
        "answered twice": [{"item": f"i{k}", "choice": "0"} for k in (0, 1, 2, 3, 3)],
        "expected one of": [{"item": f"i{k}", "choice": "A+3"} for k in range(4)],
    }
    for message, answers in cases.items():
        (test_dir / "answers.jsonl").write_text(json.dumps({"test_id": "t1", "listener": "x", "answers": answers}))
        with pytest.raises(ValueError, match=message):
            analyze_cmos(test_dir)
    _write_answers(test_dir, [("x", ["0"] * 4)], test_id="another-build")
    with pytest.raises(ValueError, match="another build"):
        analyze_cmos(test_dir)
    (test_dir / "answers.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no answers"):
        analyze_cmos(test_dir)
    with pytest.raises(ValueError, match="not an ardm_trl CMOS key"):
        (test_dir / "key.json").write_text("{}")
        analyze_cmos(test_dir)


# -------------------------------------------------------------------------------------------------------- server


def test_server_appends_valid_posts_and_rejects_bad_ones(tmp_path):
    test = build_cmos_test(_items(tmp_path, 4), tmp_path / "test")
    key = load_key(test.output_dir)
    scores = dict(zip((item["id"] for item in key["items"]), (2, 1, 0, -1)))
    with CMOSServer(test.output_dir) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert _post(server.url, _sheet(key, "ann", scores)) == (200, {"ok": True, "items": 4})
        bad = _sheet(key, "bob", scores)
        bad["answers"][0]["item"] = "nope"
        status, reply = _post(server.url, bad)
        assert status == 400 and "unknown item" in reply["error"]
        assert _post(server.url, {**_sheet(key, "bob", scores), "test_id": "old"})[0] == 400
        assert _post(server.url, "not an object")[0] == 400
        status, body, headers = _get(server.url + key["items"][0]["audio_a"], {"Range": "bytes=4-13"})
        assert status == 206 and len(body) == 10 and headers["Content-Range"].startswith("bytes 4-13/")
    lines = test.answers_path.read_text().splitlines()
    assert len(lines) == 1
    saved = json.loads(lines[0])
    assert saved["listener"] == "ann" and "received_at" in saved
    assert analyze_cmos(test.output_dir).cmos == pytest.approx(0.5)


def test_concurrent_posts_never_interleave(tmp_path):
    test = build_cmos_test(_items(tmp_path, 4), tmp_path / "test")
    key = load_key(test.output_dir)
    scores = dict(zip((item["id"] for item in key["items"]), (2, 1, 0, -1)))
    padding = "x" * 200_000  # large lines, so that a torn write would show
    errors = []

    def listener(number: int) -> None:
        for repeat in range(3):
            sheet = {**_sheet(key, f"listener{number}-{repeat}", scores), "user_agent": padding}
            if _post(server.url, sheet)[0] != 200:
                errors.append(number)

    with CMOSServer(test.output_dir) as server:
        threads = [threading.Thread(target=listener, args=(n,)) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    lines = test.answers_path.read_text().splitlines()
    assert len(lines) == 36
    assert {json.loads(line)["listener"] for line in lines} == {f"listener{n}-{r}" for n in range(12) for r in range(3)}
    result = analyze_cmos(test.output_dir)
    assert (result.num_ratings, result.num_listeners, result.cmos, result.std) == (144, 36, 0.5, pytest.approx(
        math.sqrt(sum((s - 0.5) ** 2 for s in (2, 1, 0, -1)) * 36 / 143)))


# ----------------------------------------------------------------------------------------------------------- CLI


def test_cli_build_from_folders_and_analyze(tmp_path, capsys):
    items = _items(tmp_path, 4)
    (tmp_path / "texts.tsv").write_text("".join(f"{item['id']}\t{item['text']}\n" for item in items))
    for folder, field in (("vgpo", "audio_a_path"), ("base", "audio_b_path"), ("prompts", "reference_path")):
        (tmp_path / folder).mkdir()
        for item in items:
            (tmp_path / folder / f"{item['id']}.wav").write_bytes(item[field].read_bytes())
    out = tmp_path / "cmos_s"
    assert cli_main(["build", "--texts", str(tmp_path / "texts.tsv"), "--system-dir", str(tmp_path / "vgpo"),
                     "--baseline-dir", str(tmp_path / "base"), "--reference-dir", str(tmp_path / "prompts"),
                     "--output-dir", str(out), "--test-type", "similarity", "--system-name", "VGPO",
                     "--baseline-name", "Base", "--seed", "3"]) == 0
    key = load_key(out)
    assert key["test_type"] == "similarity" and key["seed"] == 3 and len(key["items"]) == 4
    for entry in key["items"]:
        system_file = entry["audio_a"] if entry["system_side"] == "A" else entry["audio_b"]
        assert (out / system_file).read_bytes() == (tmp_path / "vgpo" / f"{entry['id']}.wav").read_bytes()
    scores = {item["id"]: 1 for item in items}
    (out / "answers.jsonl").write_text(json.dumps(_sheet(key, "a", scores)) + "\n"
                                       + json.dumps(_sheet(key, "b", {k: 2 for k in scores})) + "\n")
    capsys.readouterr()
    assert cli_main(["analyze", str(out)]) == 0
    assert "| S-CMOS | VGPO | Base | 1.50 ± " in capsys.readouterr().out
    assert cli_main(["analyze", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["num_ratings"] == 8
    with pytest.raises(SystemExit) as exit_info:  # an existing test (and its answers) is not silently rebuilt
        cli_main(["build", "--texts", str(tmp_path / "texts.tsv"), "--system-dir", str(tmp_path / "vgpo"),
                  "--baseline-dir", str(tmp_path / "base"), "--output-dir", str(out)])
    assert exit_info.value.code == 2 and "already holds a test" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------- browser


@pytest.mark.browser
def test_end_to_end_in_headless_chromium(tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium chromium-driver)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs the `playwright` python package")
    test = build_cmos_test(_items(tmp_path, 4), tmp_path / "test", test_type="similarity", seed=1)
    key = load_key(test.output_dir)
    side = {item["id"]: item["system_side"] for item in key["items"]}
    assert sorted(side.values()) == ["A", "A", "B", "B"]
    wanted = {"ann": [2, 1, 0, -1], "bob": [0, 0, -2, 1]}  # system scores, by position on the page

    submitted = 0
    with CMOSServer(test.output_dir) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for listener, scores in wanted.items():
                page = browser.new_page()
                page.goto(server.url)
                # every player loads its audio from the server and Chromium decodes it (0.3 s tones)
                page.wait_for_function("[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)")
                durations = page.evaluate("[...document.querySelectorAll('audio')].map(a => a.duration)")
                assert durations == pytest.approx([0.3] * 12, abs=0.01)
                page.evaluate("document.getElementById('A-0').play()")
                page.wait_for_function("document.getElementById('A-0').currentTime > 0")

                page.click("#submit")  # nothing is sent until the sheet is complete
                assert "listener ID" in page.inner_text("#status")
                page.fill("#listener", listener)
                page.click("#submit")
                assert page.inner_text("#status") == "Please answer item(s) 1, 2, 3, 4."
                assert page.locator(".card.missing").count() == 4
                assert _num_lines(test.answers_path) == submitted

                order = page.evaluate("JSON.parse(document.getElementById('cmos-test').textContent).items")
                for position, (item_id, score) in enumerate(zip(order, scores)):
                    label = {"A+2": "A +2", "A+1": "A +1", "0": "No Preference", "B+1": "B +1", "B+2": "B +2"}[
                        _choice_for(score, side[item_id])]
                    page.locator(f"#item-{position} label", has_text=label).click()
                assert page.locator(".card.missing").count() == 0
                page.click("#submit")
                page.wait_for_function("document.getElementById('status').className === 'done'")
                assert page.is_disabled("#submit")
                submitted += 1
                assert _num_lines(test.answers_path) == submitted
                page.close()
        finally:
            browser.close()

    sheets = [json.loads(line) for line in test.answers_path.read_text().splitlines()]
    assert [s["listener"] for s in sheets] == ["ann", "bob"]
    for sheet, scores in zip(sheets, wanted.values()):
        assert sheet["test_id"] == key["test_id"] and "Chrome" in sheet["user_agent"]
        assert [a["item"] for a in sheet["answers"]] == order
        assert [a["choice"] for a in sheet["answers"]] == [_choice_for(s, side[i]) for i, s in zip(order, scores)]
        assert all(a["answered_at"] for a in sheet["answers"])
        assert sheet["answers"][0]["played"] == {"A": True}
    result = analyze_cmos(test.output_dir)
    assert result.cmos == pytest.approx(1 / 8) and (result.num_ratings, result.num_listeners) == (8, 2)
    assert result.per_listener == pytest.approx({"ann": 0.5, "bob": -0.25})

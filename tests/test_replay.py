"""`voxkey replay` end to end: every stage a real process under supervisord, real models.

ASR wording tolerance: typed text is compared as lower-case words without punctuation
(tiny.en decides its own punctuation and writes numbers as digits), except where the
exact text matters -- the line break and what "scratch that" erased.
"""

import json

from conftest import AUDIO, assert_said, replay, spoken, voxkey, words

from bench import workload


def test_session_types_the_manifest_text(tmp_path):
    trace = tmp_path / "trace.jsonl"
    typed = replay("session_dictation.wav", "--trace", trace, "--realtime")
    sentence = spoken("dictate_report.wav")
    lines = typed.split("\n")
    assert len(lines) == 2, typed
    assert [words(line) for line in lines] == [words(sentence), words(sentence)]
    assert typed.startswith("P") and "meeting" not in typed.lower()  # scratched
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(rows) == 5  # four typed utterances and one erasure
    assert [row["backspaces"] > 0 for row in rows] == [False, False, False, True, False]
    for row in rows:
        assert row["utt"].startswith("session_dictation@")
        assert row["speech_end_ns"] < row["vad_ns"] < row["asr_final_ns"] <= row["first_key_ns"] <= row["last_key_ns"]
        assert row["speech_end_to_first_key_ms"] > 0
        assert row["recognised_ns"] <= row["asr_final_ns"]
        # Where speech ended in the recording, and when that sample was fed at real time:
        # capture stamps each frame with the time its last sample is due, so the two agree
        # to within a frame (vad's speech end is the capture time of the last speech window).
        assert 0 < row["speech_start_sample"] < row["speech_end_sample"]
        due_ns = row["stream_started_ns"] + row["speech_end_sample"] * 1_000_000_000 // 16_000
        assert 0 <= row["speech_end_ns"] - due_ns <= 1024 * 1_000_000_000 // 16_000, row


def test_48k_stereo_types_the_same_as_16k_mono():
    assert replay("dictate_report_48k_stereo.wav") == replay("dictate_report.wav")


def test_noise_types_nothing():
    assert replay("noise_only.wav") == ""


def test_jfk_types_the_sentence():
    assert_said(replay("jfk.flac"), spoken("jfk.flac"))


def test_file_sink_holds_exactly_what_was_printed(tmp_path):
    document = tmp_path / "typed.txt"
    printed = replay("session_dictation.wav", "--sink", f"file:{document}")
    assert document.read_text() == printed


def test_realtime_replay_types_the_same():
    assert_said(replay("dictate_report.wav", "--realtime"), spoken("dictate_report.wav"))


def test_missing_or_unreadable_recording_is_one_line_and_non_zero(tmp_path):
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio")
    for path in (tmp_path / "missing.wav", not_audio):
        result = voxkey("replay", path)
        assert result.returncode != 0
        assert result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and str(path) in result.stderr


def test_a_stage_that_cannot_start_is_named_with_its_reason():
    result = voxkey("replay", AUDIO / "dictate_report.wav", "--set", "stages.asr.model=/nowhere/whisper")
    assert result.returncode != 0
    assert "stage asr" in result.stderr and "/nowhere/whisper" in result.stderr and "models fetch" in result.stderr


def test_a_minute_of_continuous_speech_is_split_and_typed_whole(tmp_path):
    """66 s of speech with no pause long enough to end it: vad cuts it into parts below
    Whisper's 30 s window at quiet points, and every word is still typed."""
    from test_modes import concatenate

    recording = tmp_path / "minute.wav"
    concatenate(["jfk.flac"] * 6, recording, gap_s=0.3)
    trace = tmp_path / "trace.jsonl"
    typed = replay(recording, "--set", "stages.vad.end_of_speech_ms=1500", "--trace", trace)
    rows = [json.loads(line) for line in trace.read_text().splitlines()]
    assert 3 <= len(rows) <= 4  # 66 s in parts of at most 28 s
    expected = words(spoken("jfk.flac")) * 6
    typed_words = words(typed)
    # Cuts fall in the quiet between words; tiny.en may still mishear a word at a cut.
    assert workload.word_error_rate(expected, typed_words) <= 0.05, typed


def test_a_corrupt_model_file_is_named_with_the_fix(tmp_path):
    corrupt = tmp_path / "broken.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(1000))
    result = voxkey("replay", AUDIO / "dictate_report.wav", "--set", f"stages.instruct.model={corrupt}")
    assert result.returncode != 0
    assert (
        "stage instruct" in result.stderr and str(corrupt) in result.stderr and "voxkey models fetch" in result.stderr
    )
    told = [line for line in result.stderr.strip().splitlines() if not line.startswith("voxkey: loading: ")]
    assert len(told) == 1, result.stderr  # the error alone, after how loading went

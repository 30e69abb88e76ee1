from rt_ray.records import RECORD_FILE, forget_record, read_record, write_record


def test_a_record_is_read_back_only_with_the_fingerprint_it_was_written_with(tmp_path):
    assert read_record(tmp_path, "abc") is None
    write_record(tmp_path / "stage", "abc", {"accuracy": 0.9})
    assert read_record(tmp_path / "stage", "abc") == {"accuracy": 0.9}
    assert read_record(tmp_path / "stage", "changed") is None


def test_a_forgotten_record_is_gone(tmp_path):
    write_record(tmp_path, "abc", {"x": 1})
    forget_record(tmp_path)
    assert not (tmp_path / RECORD_FILE).exists() and read_record(tmp_path, "abc") is None
    forget_record(tmp_path)  # forgetting twice is fine

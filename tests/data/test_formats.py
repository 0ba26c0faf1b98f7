import json

import pytest

from selectgym.data import load_pool, save_pool
from selectgym.errors import SelectgymError


def write(tmp_path, name, lines):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_alpaca(tmp_path):
    p = write(tmp_path, "a.jsonl", [json.dumps({"instruction": "Add", "input": "2 and 3", "output": "5"}),
                                    json.dumps({"instruction": "Say hi", "output": "hi", "system": "Be brief."})])
    pool = load_pool(p)
    assert pool.format == "alpaca" and len(pool) == 2
    assert pool[0].prompt == [{"role": "user", "content": "Add\n\n2 and 3"}]
    assert pool[0].response == "5" and pool[0].kind == "sft"
    assert pool[1].prompt[0] == {"role": "system", "content": "Be brief."}


def test_sharegpt_both_spellings(tmp_path):
    rec1 = {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}
    rec2 = {"conversations": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q2"},
                              {"role": "assistant", "content": "A2"}]}
    pool = load_pool(write(tmp_path, "s.jsonl", [json.dumps(rec1), json.dumps(rec2)]))
    assert pool.format == "sharegpt"
    assert pool[0].prompt == [{"role": "user", "content": "Q"}] and pool[0].response == "A"
    assert [m["role"] for m in pool[1].prompt] == ["system", "user"] and pool[1].response == "A2"


def test_preference_strings_and_messages(tmp_path):
    rec1 = {"prompt": "P", "chosen": "good", "rejected": "bad"}
    rec2 = {"chosen": [{"role": "user", "content": "P2"}, {"role": "assistant", "content": "g2"}],
            "rejected": [{"role": "user", "content": "P2"}, {"role": "assistant", "content": "b2"}]}
    pool = load_pool(write(tmp_path, "p.jsonl", [json.dumps(rec1), json.dumps(rec2)]))
    assert pool.format == "preference"
    assert (pool[0].chosen, pool[0].rejected) == ("good", "bad")
    assert pool[1].prompt == [{"role": "user", "content": "P2"}] and pool[1].chosen == "g2"


def test_verifiable_plain_and_verl(tmp_path):
    rec1 = {"question": "1+1?", "answer": 2}
    rec2 = {"prompt": [{"role": "user", "content": "2+2?"}], "reward_model": {"ground_truth": "4"}}
    pool = load_pool(write(tmp_path, "v.jsonl", [json.dumps(rec1), json.dumps(rec2)]))
    assert pool.format == "verifiable" and pool[0].answer == "2" and pool[1].answer == "4"
    assert pool[0].kind == "verifiable"


def test_json_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    recs = [{"instruction": "x", "output": "y"}, {"instruction": "z", "output": "w"}]
    (tmp_path / "a.json").write_text(json.dumps(recs))
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "a.parquet")
    a, b = load_pool(tmp_path / "a.json"), load_pool(tmp_path / "a.parquet")
    assert a.ids == b.ids and a.content_hash == b.content_hash


def test_ids_stable_and_duplicates_distinct(tmp_path):
    line = json.dumps({"instruction": "x", "output": "y"})
    pool = load_pool(write(tmp_path, "d.jsonl", [line, line, json.dumps({"instruction": "q", "output": "r"})]))
    assert pool.ids[1] == pool.ids[0] + "-1"
    again = load_pool(write(tmp_path, "d2.jsonl", [json.dumps({"instruction": "q", "output": "r"}), line]))
    assert again.ids[0] == pool.ids[2] and again.ids[1] == pool.ids[0]


def test_round_trip_keeps_own_format(tmp_path):
    src = write(tmp_path, "p.jsonl", [json.dumps({"id": "a", "prompt": "P", "chosen": "c", "rejected": "r",
                                                  "meta": {"clean": True}})])
    pool = load_pool(src)
    save_pool(tmp_path / "out.jsonl", pool)
    back = load_pool(tmp_path / "out.jsonl")
    assert back.format == "preference" and back.ids == ["a"] and back[0].meta == {"clean": True}
    assert back.content_hash == pool.content_hash


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"instruction": "x", "output": "y"}', '{"instruction": "x", "output": '],
         "b.jsonl:2: not valid JSON"),
        (['{"instruction": "x", "output": "y"}', '{"instruction": "x"}'],
         "b.jsonl:2: missing field 'output' (alpaca format, line 2)"),
        (['{"text": "hello"}'], "b.jsonl:1: unknown record format (keys: text)"),
        (['{"instruction": 3, "output": "y"}'], "b.jsonl:1: field 'instruction' must be a string, got int"),
        (['{"prompt": "p", "chosen": "c", "rejected": 5}'], "b.jsonl:1: field 'rejected' must be a string"),
        (['{"conversations": [{"from": "human", "value": "q"}]}'], "must end with an assistant turn"),
        (['[1, 2]'], "b.jsonl:1: expected a JSON object, got list"),
    ],
)
def test_broken_inputs_name_file_and_line(tmp_path, lines, message):
    path = write(tmp_path, "b.jsonl", lines)
    with pytest.raises(SelectgymError) as err:
        load_pool(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_empty_missing_and_unknown_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n\n")
    with pytest.raises(SelectgymError, match=r"e.jsonl: the file holds no records"):
        load_pool(tmp_path / "e.jsonl")
    with pytest.raises(SelectgymError, match=r"no such file"):
        load_pool(tmp_path / "missing.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(SelectgymError, match=r"unknown file type '.csv'"):
        load_pool(tmp_path / "x.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(SelectgymError, match=r"not a readable parquet file"):
        load_pool(tmp_path / "bad.parquet")


def test_duplicate_explicit_ids_rejected(tmp_path):
    path = write(tmp_path, "i.jsonl", ['{"id": 1, "instruction": "x", "output": "y"}',
                                       '{"id": 1, "instruction": "z", "output": "w"}'])
    with pytest.raises(SelectgymError, match="example id '1' appears more than once"):
        load_pool(path)

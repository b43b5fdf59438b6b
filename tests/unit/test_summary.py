"""The results summary renders every table's numbers and links every plot."""

import pandas as pd

from tomosynth.summary import markdown_table, write_summary


def test_markdown_table_cells():
    df = pd.DataFrame({"set": ["a|b", "c"], "value": [1.23456, float("nan")]})
    lines = markdown_table(df).splitlines()
    assert lines[0] == "| set | value |"
    assert lines[2] == "| a\\|b | 1.235 |"
    assert lines[3] == "| c |  |"


def test_summary_lists_tables_and_plots(tmp_path):
    csv = tmp_path / "metrics" / "distance.csv"
    csv.parent.mkdir()
    pd.DataFrame({"set": ["bicubic", "srcnn"], "value": [177.24, 180.82]}).to_csv(csv, index=False)
    plot = tmp_path / "plots" / "bars.png"
    out = tmp_path / "summary.md"
    write_summary(out, {"Distances": csv}, [plot], notes=["demo run"])
    text = out.read_text()
    assert "## Distances" in text and "(metrics/distance.csv)" in text
    assert "| bicubic | 177.2 |" in text and "| srcnn | 180.8 |" in text
    assert "[bars.png](plots/bars.png)" in text
    assert "- demo run" in text

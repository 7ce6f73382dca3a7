"""`python -m rstar_pl view`: the page, opened in a real headless Chromium.

The tree is built by hand, so everything the page must show is known:

    #0 root
    ├── #1 step                      3 rollouts: Q = (+1 - 1 + 1) / 3 = +0.333
    │   ├── #2 code_end, output 5    2 rollouts: Q = +1
    │   │   └── #3 answer \\boxed{5}  correct (reference 5)
    │   └── #4 code_end, output 6    1 rollout:  Q = -1
    │       └── #5 answer \\boxed{6}  wrong
    └── #6 step whose code failed    no rollout

Rollouts: 0 -> 1 -> 2 -> 3 (+1), 0 -> 1 -> 4 -> 5 (-1), 0 -> 1 -> 2 -> 3 (+1).
What extract takes from it: one SFT pick (the path to #3, the only correct trajectory);
a step pair at #1 (#2 chosen over #4: the one child that reached a correct answer against
the one that reached only a wrong one) and a final pair (#3's trajectory over #5's, their Q
the mean over their steps: (1/3 + 1 + 1)/3 = +0.778 against (1/3 - 1 - 1)/3 = -0.556).

Chromium and chromedriver are Debian's packages (`make test` installs them). Without them
this test fails, saying so: a browser test that skips where no browser is proves nothing.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rstar_pl.data.trees import TreeWriter
from rstar_pl.search.tree import Tree
from rstar_pl.steps import build_prompt

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = 'x = 1  # </script><b id="injected">bold</b> & <!--'

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1400",
)


def _tree() -> Tree:
    tree = Tree.new("p-1", "What is 2 + 3?", "5", build_prompt("What is 2 + 3?"), seed=7)
    step = tree.add_child(0, "<code>\n# Step 1: add\n" + HOSTILE + "\n<end_of_step>", "step")
    good = tree.add_child(step, "\nprint(2 + 3)\n<end_of_code>", "code_end", output="5")
    right = tree.add_child(
        good, "<answer>\\boxed{5}<end_of_answer>", "answer", terminal=True, answer="5", correct=True
    )
    bad = tree.add_child(step, "\nprint(2 + 4)\n<end_of_code>", "code_end", output="6")
    wrong = tree.add_child(
        bad, "<answer>\\boxed{6}<end_of_answer>", "answer", terminal=True, answer="6", correct=False
    )
    tree.add_child(
        0,
        "<code>\n# Step 1: oops\ny = undefined_name\n<end_of_step>",
        "step",
        error="NameError: name 'undefined_name' is not defined",
    )
    tree.backup(right, 1.0)
    tree.backup(wrong, -1.0)
    tree.backup(right, 1.0)
    return tree


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("view")
    with TreeWriter(folder / "trees-00000-of-00001.jsonl") as writer:
        writer.write(_tree())
        other = Tree.new("p-2", "Another?", "1", build_prompt("Another?"), seed=8)
        writer.write(other)
    out = folder / "tree.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rstar_pl",
            "view",
            str(folder),
            "--problem",
            "p-1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"view: problem p-1: 1 tree(s), 7 nodes, 1 SFT picks, 2 pairs -> {out}"
    )
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.fail(
            "the viewer test needs Debian's chromium and chromium-driver "
            "(apt-get install -y chromium chromium-driver; `make test` installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def _node(driver, node: int):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, f"t0-n{node}")


def test_error_pairs_are_marked_when_extract_would_take_them():
    """extract --error-pairs pairs the root's step that reached the right answer (node 1,
    Q (1 - 1 + 1) / 3) with the failed step beside it (node 6, Q -1 by convention)."""
    from rstar_pl.data.extraction import ExtractConfig
    from rstar_pl.viewer import training_marks

    default = training_marks([_tree()])
    assert all(p.kind != "error" for p in default.pairs)
    marks = training_marks([_tree()], ExtractConfig(error_pairs=True))
    errors = [p for p in marks.pairs if p.kind == "error"]
    assert [(p.chosen, p.rejected) for p in errors] == [((0, 1), (0, 6))]
    assert (errors[0].chosen_q, errors[0].rejected_q) == (pytest.approx(1 / 3), -1.0)
    assert marks.unmatched == 0


def test_page_is_self_contained(page):
    html = page.read_text(encoding="utf-8")
    for external in ("http://", "https://", "<link", " src=", "@import", "url("):
        assert external not in html, external


def test_rendered_page_shows_the_tree(page, browser):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    assert browser.title == "rstar-pl tree: p-1"
    assert len(browser.find_elements(By.CSS_SELECTOR, ".node")) == 7
    assert browser.find_element(By.ID, "sft-count").text == "1"
    assert browser.find_element(By.ID, "pair-count").text == "2"
    # nothing was fetched: the page has no resource but itself
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0

    one, good, right = _node(browser, 1), _node(browser, 2), _node(browser, 3)
    assert "N=3" in one.text and "Q=+0.333" in one.text and "prior=—" in one.text
    assert "N=2" in good.text and "Q=+1.000" in good.text and "output: 5" in good.text
    # model text is shown as text, never parsed as markup
    assert HOSTILE in one.find_element(By.CSS_SELECTOR, "pre.text").text
    assert browser.find_elements(By.ID, "injected") == []

    classes = {n: set(_node(browser, n).get_attribute("class").split()) for n in range(7)}
    assert {"sft", "verdict-correct", "on-rollout"} <= classes[3]
    assert "SFT pick 1" in right.text
    assert {n for n in range(7) if "sft" in classes[n]} == {1, 2, 3}
    assert {n for n in range(7) if "on-rollout" in classes[n]} == {0, 1, 2, 3, 4, 5}
    assert {n for n in range(7) if "chosen" in classes[n]} == {2, 3}
    assert {n for n in range(7) if "rejected" in classes[n]} == {4, 5}
    assert "verdict-wrong" in classes[5] and "verdict-failed" in classes[6]
    partner = good.find_element(By.CSS_SELECTOR, ".note-chosen a")
    assert (partner.text, partner.get_attribute("href").split("#")[1]) == ("#4", "t0-n4")
    assert "step pair, rejected (Q -1.000) against #2" in _node(browser, 4).text
    assert "final pair, chosen (Q +0.778) over #5" in right.text
    assert "final pair, rejected (Q -0.556) against #3" in _node(browser, 5).text
    assert "error: NameError: name 'undefined_name' is not defined" in _node(browser, 6).text


def test_clicking_a_rollout_lights_its_path(page, browser):
    from selenium.webdriver.common.by import By

    browser.get(page.as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.rollout")
    assert [r.find_elements(By.TAG_NAME, "td")[3].text for r in rows] == [
        "correct",
        "wrong",
        "correct",
    ]
    rows[1].click()
    lit = {n for n in range(7) if "lit" in _node(browser, n).get_attribute("class").split()}
    assert lit == {0, 1, 4, 5}
    rows[1].click()  # a second click turns it off
    assert browser.find_elements(By.CSS_SELECTOR, ".node.lit") == []
    assert _node(browser, 6).is_displayed()
    browser.find_element(By.ID, "only-visited").click()
    assert not _node(browser, 6).is_displayed()
    assert _node(browser, 5).is_displayed()


def test_screenshot_shows_the_highlights(page, browser, tmp_path):
    """The page as a person sees it: the SFT stripe (#2e9d4f) and the rejected steps'
    dashed border (#d4731f) are drawn."""
    from PIL import Image

    browser.get(page.as_uri())
    png = browser.get_screenshot_as_png()
    (tmp_path / "tree.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size[0] >= 1000
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20)}
    assert (0x2E, 0x9D, 0x4F) in colours
    assert (0xD4, 0x73, 0x1F) in colours
    assert len(colours) > 50  # text was drawn, not a blank page


def test_unknown_problem_is_one_line(page, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rstar_pl",
            "view",
            str(page.parent),
            "--problem",
            "p-11",
            "--out",
            str(tmp_path / "x.html"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"rstar-pl view: error: --problem p-11: no tree of that problem in {page.parent} "
        "(did you mean p-1?); problems there: p-1, p-2"
    ]

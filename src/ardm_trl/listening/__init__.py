"""CMOS listening tests (the VGPO paper's Appendix C): build a page comparing two systems' samples of the same prompts,
serve it locally, collect the answers, and turn them into a CMOS with a confidence interval.

```bash
python -m ardm_trl.listening build --manifest items.jsonl --output-dir cmos_naturalness --test-type naturalness
python -m ardm_trl.listening serve cmos_naturalness --port 8000
python -m ardm_trl.listening analyze cmos_naturalness
```
"""

from .analyze import CMOSResult, analyze_cmos, cmos_scores, cmos_table, t_confidence_interval
from .answers import CHOICE_VALUES, append_submission, load_answers, validate_submission
from .build import CMOSTest, build_cmos_test, items_from_folders, load_items, load_key, load_texts
from .page import CHOICES, TEST_TYPES, render_page
from .server import CMOSServer

__all__ = [
    "CHOICES",
    "CHOICE_VALUES",
    "TEST_TYPES",
    "CMOSResult",
    "CMOSServer",
    "CMOSTest",
    "analyze_cmos",
    "append_submission",
    "build_cmos_test",
    "cmos_scores",
    "cmos_table",
    "items_from_folders",
    "load_answers",
    "load_items",
    "load_key",
    "load_texts",
    "render_page",
    "t_confidence_interval",
    "validate_submission",
]

"""Write the golden files of ``tests/pipeline/test_behaviour_unchanged.py`` with whichever
``normxlogit`` Python imports (put a reference commit's code first on ``PYTHONPATH``: README.md).

    python tests/pipeline/golden/make_golden.py              # all runs, into this folder
    python tests/pipeline/golden/make_golden.py --out DIR    # elsewhere (to diff two generations)
    python tests/pipeline/golden/make_golden.py --check      # compare with this folder, write nothing
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEST_MODULE = HERE.parent / "test_behaviour_unchanged.py"


def load_test_module():
    spec = importlib.util.spec_from_file_location("test_behaviour_unchanged", TEST_MODULE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the golden files (default: here)")
    parser.add_argument("--runs", default=None, help="comma-separated run names (default: all)")
    parser.add_argument("--check", action="store_true", help="compare with the golden files instead")
    args = parser.parse_args(argv)

    import normxlogit
    import normxlogit.pipeline.cli
    import normxlogit.transforms

    golden = load_test_module()
    for package in (normxlogit, normxlogit.transforms, normxlogit.pipeline):
        print(f"{package.__name__} from {Path(package.__file__).resolve().parent}", file=sys.stderr)
    runs = [r for r in golden.RUNS if args.runs is None or r.name in args.runs.split(",")]
    exact = os.environ.get("NORMXLOGIT_GOLDEN_EXACT") == "1"
    failed = 0
    with tempfile.TemporaryDirectory(prefix="normxlogit-golden-") as tmp:
        root = Path(tmp)
        models = golden.build_models(root / "models")
        corpora = golden.write_corpora(root / "corpora")
        for run in runs:
            value = golden.execute(run, root, models, corpora)
            target = args.out / f"{run.name}.json"
            if args.check:
                found = golden.differences(json.loads(target.read_text(encoding="utf-8")), value, exact)
                failed += bool(found)
                verdict = f"differs in {len(found)} places" if found else "same"
                print(f"{run.name}: {verdict}", file=sys.stderr)
                for line in found[: golden.MAX_REPORTED]:
                    print(f"  {line}", file=sys.stderr)
                continue
            args.out.mkdir(parents=True, exist_ok=True)
            target.write_text(golden.dumps(value) + "\n", encoding="utf-8")
            print(f"wrote {target}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

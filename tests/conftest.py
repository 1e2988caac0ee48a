from pathlib import Path

import pyarrow.parquet as pq
import pytest

# the repository, and the shared test data beside it (../shared/data): never an absolute path,
# CI runs in a fresh clone elsewhere
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
AI = SHARED / "ai" / "slop_score.parquet"
HUMAN = sorted((SHARED / "human").glob("*.parquet"))
ESSAYS = SHARED / "human" / "essays.parquet"


@pytest.fixture(scope="session")
def ai_table():
    if not AI.exists():
        pytest.skip(f"real data not found at {AI}")
    return pq.read_table(AI)


@pytest.fixture(scope="session")
def ai_texts(ai_table):
    """A spread of real model outputs (every 20th row: all models, both prompt kinds)."""
    return ai_table["text"].to_pylist()[::20]

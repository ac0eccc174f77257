"""Launched by tests/test_coco_evaluation.py under torchrun: every rank holds the detections
of its own images (the last image on both ranks, as a padding sampler does), gathers them and
evaluates. ``python coco_gather_worker.py ROOT OUT_DIR``; rank r writes OUT_DIR/rank{r}.json."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from coco_fixtures import noisy_detections  # noqa: E402
from mlperf_train.distributed import RunEnv  # noqa: E402
from references.coco import evaluation, layout  # noqa: E402


def main(root: str, out_dir: str) -> None:
    env = RunEnv.from_environment(device="cpu")
    gt = json.loads(layout.annotation_path(root, "val").read_text())
    detections = noisy_detections(gt, seed=11)
    image_ids = sorted(i["id"] for i in gt["images"])
    mine = set(image_ids[i] for i in env.shard(len(image_ids)))
    mine.add(image_ids[-1])
    local = [d for d in detections if d["image_id"] in mine]
    gathered = evaluation.gather_detections(local, env)
    # the plain torch.distributed path gives the same
    assert evaluation.gather_detections(local) == gathered
    stats = evaluation.coco_eval(layout.annotation_path(root, "val"), gathered, "bbox")
    Path(out_dir, f"rank{env.rank}.json").write_text(json.dumps({"detections": gathered, "stats": stats}))
    env.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

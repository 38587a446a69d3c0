"""The sweep runner on real Ray (no mocks): an in-process local cluster, and a `ray start --head` cluster on
loopback started and stopped here, with a worker killed mid-run. Skipped when Ray is not installed
(`pip install -e '.[ray]'`). Settings measured on these machines: loopback only
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0), no usage stats, token auth with a random token in the environment
(nothing written to ~), a short --temp-dir, and never `ray stop` (it kills every Ray process on the machine)."""
from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

# read by `import ray`: must be set before it, and inherited by every Ray process started below
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
os.environ.pop("RAY_ADDRESS", None)
try:
    import ray
except ImportError:  # the core suite stays green without the [ray] extra
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

from classic_rl.sweep import RunSpec, parse_overrides, ray_runtime_env, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ray
TINY = parse_overrides(["n_steps=64", "batch_size=32", "n_epochs=1", "eval_every=0", "eval_episodes=1",
                        "eval_envs=1"])


def test_local_ray_cluster_runs_reports_failures_and_skips(tmp_path):
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 ** 2,
             runtime_env=ray_runtime_env(), log_to_driver=False)
    try:
        specs = [RunSpec("ppo", "CartPole", 0, 64, TINY), RunSpec("ppo", "NoSuchEnv", 0, 64, TINY)]
        report = run_sweep(specs, tmp_path, backend="ray", verbose=False)
        assert [r["outcome"] for r in report.results] == ["done", "failed"], report.results
        assert "unknown environment" in report.results[1]["stderr_tail"]
        assert all((Path(d) / "summary.json").is_file() for d in report.run_dirs())
        again = run_sweep(specs[:1], tmp_path, backend="ray", verbose=False)
        assert [r["outcome"] for r in again.results] == ["skipped"]
    finally:
        ray.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _training_pid(marker: str) -> int | None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"algos.ppo" in cmd and any(marker.encode() in part for part in cmd):
            return int(pid)
    return None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_ray_head_cluster_worker_killed_mid_run_is_retried_then_everything_skips(tmp_path):
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's unix socket paths must stay < ~107 chars
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}", "--object-store-memory=104857600"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    root = tmp_path / "sweep"
    args = [sys.executable, "-m", "classic_rl.sweep", "--backend", "ray", "--address", f"127.0.0.1:{port}",
            "--algos", "ppo", "--envs", "CartPole", "--seeds", "0-1", "--total-steps", "1920",
            "--set", "checkpoint_every=192", "--root", str(root)]
    args += [a for k, v in TINY for a in ("--set", f"{k}={v}")]
    try:
        deadline = time.time() + 60
        while True:  # the GCS port answers once the head is up
            assert head.poll() is None, head.stderr.read().decode()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline, "ray head did not come up in 60 s"
                time.sleep(0.3)
        driver = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        slot0 = RunSpec("ppo", "CartPole", 0, 1920, tuple(sorted(TINY + (("checkpoint_every", "192"),)))
                        ).slot(root.resolve())
        killed = None
        deadline = time.time() + 90
        while killed is None and time.time() < deadline and driver.poll() is None:
            pid = _training_pid(str(slot0))
            if pid and any(slot0.rglob("latest.pt")):
                worker = _parent(pid)
                os.kill(worker, signal.SIGKILL)  # the Ray worker executing the task, mid-run
                killed = worker
            time.sleep(0.1)
        out, err = driver.communicate(timeout=180)
        assert killed is not None, f"never saw the run with a checkpoint to kill\n{out}\n{err}"
        assert driver.returncode == 0, out + err
        assert "| 1 | 1 | 0 | 0 | 0 | 2 |" in out, out  # seed 0 resumed by the retried task, seed 1 done
        assert (slot0 / "stderr.log").read_text().count("=== attempt") == 2
        again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "| 0 | 0 | 2 | 0 | 0 | 2 |" in again.stdout, again.stdout + again.stderr
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        import shutil

        shutil.rmtree(temp_dir, ignore_errors=True)

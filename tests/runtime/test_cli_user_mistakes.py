"""``python -m runtime``, ``python -m flightsim`` and ``python -m search retype``: the user mistakes an
adversarial pass over the command lines found (2026-12-04) give one ``error:`` line and exit status
2, never a traceback, and nothing the user holds is overwritten silently."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from runtime.__main__ import main as runtime_main
from runtime.bundle import extra_files, read_bundle, rewritable_manifest, write_bundle
from runtime.config import load_defaults
from runtime.health import Health
from runtime.server import Runtime
from runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def unreadable_ir(tmp_path: Path) -> Path:
    """models/default with models/sar's weights: checksums that match, weights that do not fit the IR."""
    bundle = read_bundle(REPO / "models/default")
    write_bundle(tmp_path / "bad", bundle.files["model.xml"], (REPO / "models/sar/model.bin").read_bytes(),
                 rewritable_manifest(bundle), extra_files(bundle))
    return tmp_path / "bad"


@pytest.mark.parametrize("command", [["infer", "--input", "IN", "--output", "OUT"], ["check"]])
def test_an_ir_openvino_cannot_read_is_an_error_line(command: list[str], unreadable_ir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "in.npy", np.zeros((3, 64, 64), np.uint8))
    argv = [a.replace("IN", str(tmp_path / "in.npy")).replace("OUT", str(tmp_path / "o.geojson")) for a in command]
    assert runtime_main([*argv, "--model", str(unreadable_ir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "OpenVINO cannot read this IR" in err and "Incorrect weights" in err
    assert "\n" not in err and "Exception from" not in err


def test_a_folder_as_output_and_a_file_that_is_no_image_are_error_lines(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "in.npy", np.zeros((3, 64, 64), np.uint8))
    (tmp_path / "folder").mkdir()
    assert runtime_main(["infer", "--model", str(REPO / "models/default"), "--input", str(tmp_path / "in.npy"),
                         "--output", str(tmp_path / "folder")]) == 2
    assert "a folder; give the GeoJSON file to write" in capsys.readouterr().err
    # refused before the scene is read (and inferred): here one that does not exist is not reached
    assert runtime_main(["infer", "--model", str(REPO / "models/default"), "--input", str(tmp_path / "none.tif"),
                         "--output", str(tmp_path / "folder")]) == 2
    assert "a folder; give the GeoJSON file to write" in capsys.readouterr().err
    (tmp_path / "empty.tif").write_bytes(b"")
    assert runtime_main(["infer", "--model", str(REPO / "models/default"), "--input", str(tmp_path / "empty.tif"),
                         "--output", str(tmp_path / "o.geojson")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "empty.tif" in err and "Traceback" not in err


def test_keys_are_never_overwritten_and_client_names_stay_in_out(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys"
    assert runtime_main(["keys", "--out", str(out), "--signing"]) == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    # a second run would lock out every payload holding the first public keys
    assert runtime_main(["keys", "--out", str(out), "--signing"]) == 2
    assert "key files exist already" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    for name in ("../escape", "", ".hidden"):
        assert runtime_main(["keys", "--out", str(tmp_path / "k2"), "--client", name]) == 2
        assert "client names" in capsys.readouterr().err
    assert not (tmp_path / "escape.key").exists() and not (tmp_path / "k2").exists()


def test_a_signing_pair_is_added_beside_curve_keys_and_never_half_a_set(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "keys"
    assert runtime_main(["keys", "--out", str(out)]) == 0
    curve = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert runtime_main(["keys", "--out", str(out), "--signing-only"]) == 0  # CURVE keys made before: kept
    assert (out / "uplink.verify.pem").is_file() and all((out / n).read_bytes() == b for n, b in curve.items()
                                                          if (out / n).is_file())
    capsys.readouterr()
    # a signing pair already there: nothing at all is written, not the CURVE half of the request
    fresh = tmp_path / "fresh"
    assert runtime_main(["keys", "--out", str(fresh), "--signing-only"]) == 0
    assert runtime_main(["keys", "--out", str(fresh), "--signing"]) == 2
    err = capsys.readouterr()
    assert "key files exist already" in err.err and "keys in" not in err.out
    assert sorted(p.name for p in fresh.iterdir()) == ["uplink.signing.pem", "uplink.verify.pem"]


def test_a_watchdog_file_without_a_folder_is_refused_before_serving(tmp_path: Path) -> None:
    config = load_defaults(REPO / "runtime/defaults.toml")
    settings = Settings.from_config(config, watchdog_file=str(tmp_path / "nodir" / "wd"))  # infer reads it too
    with pytest.raises(ValueError, match="watchdog_file .*no folder"):
        Runtime(settings)


def test_health_goes_on_when_the_watchdog_file_cannot_be_fed(tmp_path: Path) -> None:
    # The folder removed under a running payload: one event, and Health keeps pinging and feeding.
    events: list[tuple[str, dict]] = []
    health = Health([], period_s=1.0, hang_timeout_s=1.0, event=lambda name, **kw: events.append((name, kw)),
                    watchdog_file=str(tmp_path / "gone" / "wd"))
    assert health.check() and health.check()
    assert [name for name, _ in events] == ["watchdog_unwritable"] and health.report()["watchdog_file_ok"] is False
    (tmp_path / "gone").mkdir()
    assert health.check() and (tmp_path / "gone" / "wd").exists() and health.report()["watchdog_file_ok"] is True
    (tmp_path / "gone" / "wd").unlink()
    (tmp_path / "gone").rmdir()
    assert health.check() and [name for name, _ in events] == ["watchdog_unwritable"] * 2  # a new streak: said again


def test_flightsim_generate_into_a_file_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flightsim.__main__ import main as flightsim_main

    (tmp_path / "file").write_text("")
    assert flightsim_main(["generate", "--seed", "1", "--size", "64", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --out {tmp_path / 'file'}: a file, not a folder"
    with pytest.raises(SystemExit):
        flightsim_main(["stream", "--scene", "x.tif", "--tiles", "tcp://127.0.0.1:1", "--rate", "nan"])
    assert "argument --rate: " in capsys.readouterr().err  # nan was taken, and sent as fast as acknowledged


def test_retype_refuses_to_overwrite_its_source_and_asks_for_a_type(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from search.__main__ import main as search_main

    bundle = read_bundle(REPO / "models/default")
    write_bundle(tmp_path / "m", bundle.files["model.xml"], bundle.files["model.bin"], rewritable_manifest(bundle),
                 extra_files(bundle))
    before = (tmp_path / "m" / "manifest.json").read_bytes()
    assert search_main(["retype", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "m"),
                        "--input-dtype", "uint8"]) == 2
    assert "is the bundle being retyped" in capsys.readouterr().err
    assert (tmp_path / "m" / "manifest.json").read_bytes() == before
    assert search_main(["retype", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "u8")]) == 2
    assert "give --input-dtype uint8 or uint16" in capsys.readouterr().err


def test_infer_names_a_folder_and_the_shape_it_was_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = ["--model", str(REPO / "models/default"), "--output", str(tmp_path / "o.geojson")]
    (tmp_path / "folder").mkdir()
    assert runtime_main(["infer", "--input", str(tmp_path / "folder"), *model]) == 2
    assert "a folder, not an image file" in capsys.readouterr().err  # was "no such file"
    np.save(tmp_path / "f.npy", np.zeros((64, 64), np.float32))
    assert runtime_main(["infer", "--input", str(tmp_path / "f.npy"), *model]) == 2
    assert "got (64, 64) float32" in capsys.readouterr().err  # was "(1, 64, 64)"


def test_supervise_whose_first_runtime_never_gets_ready_is_an_error_line(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    endpoints = [a for name in ("tiles", "results", "control", "telemetry", "acks")
                 for a in (f"--{name}", f"ipc://{tmp_path}/{name}")]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    assert runtime_main(["supervise", "--max-restarts", "1", "--", "--model", str(tmp_path / "none"), *endpoints]) == 2
    assert "error: the runtime exited before it was ready (code 2)" in capsys.readouterr().err
    # Called in-process, it gives the caller its handlers back: it left its own, whose stop() a later
    # Ctrl-C reached instead of the KeyboardInterrupt a later test waited for.
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


def test_an_output_that_is_no_geojson_file_name_is_an_error_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`--output out/v.tif` wrote GeoJSON under a raster's name, without a word (new-user walkthrough)."""
    np.save(tmp_path / "in.npy", np.zeros((3, 64, 64), np.uint8))
    assert runtime_main(["infer", "--model", str(REPO / "models/default"), "--input", str(tmp_path / "in.npy"),
                         "--output", str(tmp_path / "v.tif")]) == 2
    assert f"give a .geojson or .json file, e.g. {tmp_path / 'v.geojson'}" in capsys.readouterr().err
    assert not (tmp_path / "v.tif").exists()


def test_compile_out_onto_a_file_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`runtime compile --out README.md` printed a bare "[Errno 17] File exists" (new-user walkthrough)."""
    (tmp_path / "notes.txt").write_text("mine")
    assert runtime_main(["compile", "--model", str(REPO / "models/default"), "--target", "CPU",
                         "--out", str(tmp_path / "notes.txt")]) == 2
    assert "--out " + str(tmp_path / "notes.txt") + ": a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"

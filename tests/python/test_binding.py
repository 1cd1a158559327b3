"""The binding without torch: loading, the seed's call, readings vs the CLI,
texts, and clear errors for bad arguments."""
import ctypes
import io
import json
import os
import tempfile
import unittest

import _support
import memguard
from memguard import _lib


class TestLibrary(unittest.TestCase):
    def test_struct_sizes_match(self):
        lib = _lib.library()
        self.assertEqual(lib.mg_config_size(), ctypes.sizeof(_lib.Config))
        self.assertEqual(ctypes.sizeof(_lib.TextOpts), 8)

    def test_ram_sources_match(self):
        lib = _lib.library()
        for i, name in enumerate(_lib.RAM_SOURCES):
            self.assertEqual(lib.mg_ram_source_name(i).decode(), name)
        self.assertEqual(lib.mg_ram_source_name(len(_lib.RAM_SOURCES)).decode(), "unknown")

    def test_reading_has_commit_fields(self):
        # Linux has no commit limit: the fields are there and null.
        with memguard.Monitor(no_gpu=True) as m:
            m.sample()
            ram = m.reading()["ram"]
        self.assertIn(ram["source"], _lib.RAM_SOURCES)
        self.assertIsNone(ram["commit_used_bytes"])
        self.assertIsNone(ram["commit_limit_bytes"])

    def test_memguard_library_missing_file(self):
        with self.assertRaises(memguard.MemguardError) as cm:
            _lib.find_library(env={"MEMGUARD_LIBRARY": "/nonexistent/libmemguard.so"})
        self.assertEqual(cm.exception.code, _lib.MG_ENOLIB)
        self.assertIn("MEMGUARD_LIBRARY='/nonexistent/libmemguard.so'", str(cm.exception))

    def test_not_found_anywhere_lists_places(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(memguard.MemguardError) as cm:
                _lib.find_library(env={}, package_dir=d, prefix_dirs=[d + "/lib"],
                                  use_ldconfig=False)
        msg = str(cm.exception)
        self.assertIn("libmemguard not found", msg)
        self.assertIn("set MEMGUARD_LIBRARY", msg)
        self.assertIn(d + "/lib/libmemguard.so.0", msg)

    def test_found_next_to_package(self):
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "libmemguard.so.0"), "w").close()
            self.assertEqual(_lib.find_library(env={}, package_dir=d, prefix_dirs=[]),
                             os.path.join(d, "libmemguard.so.0"))

    def test_found_under_prefix(self):
        with tempfile.TemporaryDirectory() as d:
            pkg = os.path.join(d, "lib", "python3", "dist-packages", "memguard")
            os.makedirs(pkg)
            open(os.path.join(d, "lib", "libmemguard.so"), "w").close()
            self.assertEqual(_lib.find_library(env={}, package_dir=pkg),
                             os.path.join(d, "lib", "libmemguard.so"))

    def test_not_a_library(self):
        with tempfile.NamedTemporaryFile(suffix=".so") as f:
            f.write(b"not an ELF file")
            f.flush()
            with self.assertRaises(memguard.MemguardError) as cm:
                _lib.load(f.name)
        self.assertIn("cannot load libmemguard from", str(cm.exception))

    def test_missing_library_in_a_fresh_process(self):
        code = "import memguard\ntry:\n memguard.check_memory_safety()\n" \
               "except memguard.MemguardError as e:\n print('ERR', e)\n"
        r = _support.run([_support.PYTHON, "-c", code], timeout=30,
                         env=_support.env(MEMGUARD_LIBRARY="/nonexistent/lib.so"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ERR MEMGUARD_LIBRARY='/nonexistent/lib.so': no such file", r.stdout)


class TestSeedCall(unittest.TestCase):
    def test_safe_returns_true_none(self):
        # RAM from meminfo cannot reach 100 %; no GPU is looked at.
        self.assertEqual(memguard.check_memory_safety(1.0, 1.0, no_gpu=True), (True, None))

    def test_defaults_shape(self):
        is_safe, warning = memguard.check_memory_safety()
        self.assertIsInstance(is_safe, bool)
        self.assertTrue(warning is None if is_safe else isinstance(warning, str))

    def test_unsafe_returns_seed_text(self):
        is_safe, warning = memguard.check_memory_safety(0.9, "0.1%", no_gpu=True,
                                                        lang="en")
        self.assertFalse(is_safe)
        self.assertRegex(warning, r"RAM usage high: [0-9.]+% \([0-9.]+GB/[0-9.]+GB\)$")
        self.assertFalse(warning.endswith("\n"))

    def test_bad_thresholds(self):
        for args, code, word in [((1.5, 0.85), _lib.MG_ERANGE, "threshold_gpu 1.5"),
                                 ((0.9, 0), _lib.MG_ERANGE, "threshold_ram 0"),
                                 (("x", 0.85), _lib.MG_EPARSE, "threshold_gpu 'x'"),
                                 ((None, 0.85), _lib.MG_EINVAL, "threshold_gpu")]:
            with self.assertRaises(memguard.MemguardError) as cm:
                memguard.check_memory_safety(*args)
            self.assertEqual(cm.exception.code, code, args)
            self.assertIn(word, str(cm.exception))
            self.assertIsNotNone(cm.exception.name)


class TestMonitor(unittest.TestCase):
    def test_bad_arguments_name_the_argument(self):
        cases = [(dict(ram_budget="8Q"), "ram_budget '8Q'"),
                 (dict(ram_budget=-1), "ram_budget -1"),
                 (dict(warn_gpu=0.95), "warn_gpu_frac 0.95 is above stop_gpu_frac 0.92"),
                 (dict(stop_ram="abc"), "stop_ram 'abc'"),
                 (dict(check_eval_every=0), "check_eval_every 0"),
                 (dict(lang="fr"), "lang 'fr'"),
                 (dict(pid=-3), "pid -3")]
        for kw, text in cases:
            with self.assertRaises(memguard.MemguardError, msg=kw) as cm:
                memguard.Monitor(**kw)
            self.assertIn(text, str(cm.exception))

    def test_parse_helpers(self):
        self.assertEqual(memguard.parse_size("8G"), 8 << 30)
        self.assertEqual(memguard.parse_size("1.5G"), 3 << 29)
        self.assertEqual(memguard.parse_size(4096), 4096)
        self.assertAlmostEqual(memguard.parse_frac("90%"), 0.9)
        with self.assertRaises(memguard.MemguardError):
            memguard.parse_size("0")

    def test_readings_equal_cli_json(self):
        with memguard.Monitor(ram_budget="64G", min_free_ram="1G") as m:
            m.sample()
            mine = m.reading()
            r = _support.run([_support.CLI, "check", "--json", "--ram-budget", "64G",
                              "--min-free-ram", "1G"], timeout=30, env=_support.env())
            self.assertIn(r.returncode, (0, 3, 4), r.stderr)
            cli = json.loads(r.stdout)
        self.assertEqual(mine["thresholds"], cli["thresholds"])
        self.assertEqual(mine["thresholds"]["ram_budget_bytes"], 64 << 30)
        for key in ("mem_total_bytes", "total_bytes", "source"):
            self.assertEqual(mine["ram"][key], cli["ram"][key], key)
        self.assertEqual(mine["swap"]["total_bytes"], cli["swap"]["total_bytes"])
        self.assertEqual(mine["cgroup"] and mine["cgroup"]["limit_bytes"],
                         cli["cgroup"] and cli["cgroup"]["limit_bytes"])
        self.assertEqual(mine["gpu_state"], cli["gpu_state"])
        self.assertEqual([(g["name"], g["total_bytes"]) for g in mine["gpus"]],
                         [(g["name"], g["total_bytes"]) for g in cli["gpus"]])
        # Same machine, moments apart: the used figures agree within 5 points.
        self.assertAlmostEqual(mine["ram"]["used_frac"], cli["ram"]["used_frac"], delta=0.05)
        for a, b in zip(mine["gpus"], cli["gpus"]):
            self.assertAlmostEqual(a["used_frac"], b["used_frac"], delta=0.05)
        self.assertEqual(mine["process_tree"]["pid"], os.getpid())

    def test_levels(self):
        with memguard.Monitor(warn_ram="0.1%", stop_ram=1.0, no_gpu=True) as m:
            self.assertEqual(m.sample(), memguard.Level.WARN)
        with memguard.Monitor(ram_budget="1M", no_gpu=True) as m:
            self.assertEqual(m.sample(), memguard.Level.CRITICAL)
            self.assertEqual(m.reading()["level"], "critical")
            self.assertEqual(m.reading()["ram"]["source"], "budget")

    def test_closed_monitor(self):
        m = memguard.Monitor(no_gpu=True)
        m.close()
        m.close()
        with self.assertRaises(memguard.MemguardError):
            m.sample()

    def test_system_resource_check_prints_block(self):
        out = io.StringIO()
        reading = memguard.system_resource_check(file=out, lang="en")
        self.assertIn("System Resource Check", out.getvalue())
        self.assertIn("RAM: ", out.getvalue())
        self.assertIn("ram", reading)

    def test_trainer_memory_in_report(self):
        with memguard.Monitor(no_gpu=True, lang="en") as m:
            m.set_trainer_memory(3 << 30, 4 << 30)
            m.sample()
            self.assertEqual(m.reading()["trainer"],
                             {"allocated_bytes": 3 << 30, "reserved_bytes": 4 << 30})


if __name__ == "__main__":
    unittest.main()

import subprocess
import sys

from pipeline.spark.session import package_zip


def test_package_zip_is_importable_on_its_own(tmp_path):
    archive = package_zip(tmp_path / "pipeline.zip")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import pipeline.text.matching, pipeline.spark.match;"
            "print(pipeline.text.matching.__file__)")
    # the zip comes first on sys.path, so it (not the editable install) must provide the package
    result = subprocess.run([sys.executable, "-I", "-c", code, str(archive)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(str(archive))

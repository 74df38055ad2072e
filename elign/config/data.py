"""The ``data`` section: where the molecules come from (QM9 from qm9pack or figshare, GEOM-Drugs, files), the
split, the filters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from elign.config.base import Section
from elign.config_checks import fractions_leave_training, known_elements
from elign.registries import DATA_SOURCES


class FigshareFiles(Section):
    """The three original QM9 files on figshare (Ramakrishnan et al., Sci. Data 1, 140022, 2014)."""

    xyz_archive: str = Field("3195389", description="figshare file id of dsgdb9nsd.xyz.tar.bz2")
    uncharacterized: str = Field("3195404", description="figshare file id of uncharacterized.txt")
    atomref: str = Field("3195395", description="figshare file id of atomref.txt")


class FigshareSha256(Section):
    """Expected sha256 of each downloaded file (the published originals by default)."""

    xyz_archive: str = "3a63848ac80691bdb8d41834b575afad345b9300d7a2db0c38adb7f6eaa8360c"
    uncharacterized: str = "3aa5115d540b356de94791d4a74c3bf1ed91c469ecf52a4f5d7cc0506fe02e24"
    atomref: str = "af739d4a0fbe894a56f346ad6045ee1b74c58f8a8c9ef3fbfed920c9ad8b00f9"


class FigshareSource(Section):
    """QM9 from the original figshare archive, downloaded (or read from ``local_dir``) and sha256-checked."""

    base_url: str = Field(
        "https://ndownloader.figshare.com/files",
        description="download URL prefix; a file is fetched from {base_url}/{file id}",
    )
    file_ids: FigshareFiles = FigshareFiles()
    sha256: FigshareSha256 = FigshareSha256()
    cache_dir: str = Field("resources/qm9/figshare", description="where downloads are kept")
    local_dir: str | None = Field(None, description="read the three files from this folder instead of downloading")
    retries: int = Field(3, ge=1, le=20)
    timeout_s: float = Field(60.0, gt=0)


class GeomDrugsSource(Section):
    """GEOM-Drugs (Axelrod & Gomez-Bombarelli, Sci. Data 9, 185, 2022) from ``drugs_crude.msgpack``.

    Download: Harvard Dataverse, doi:10.7910/DVN/JNGTDF, file 4360331 (drugs_crude.msgpack.tar.gz, ~43 GB; the
    URL EDM's README gives), then extract ``drugs_crude.msgpack``. Its MD5 (the checksum Dataverse lists; no
    sha256 is published) is pinned below.
    """

    path: str = "resources/geom/drugs_crude.msgpack"
    download_url: str = Field(
        "https://dataverse.harvard.edu/api/access/datafile/4360331",
        description="drugs_crude.msgpack.tar.gz; the workflow fetches it (rule geom_drugs_download) only when path "
        "is missing",
    )
    md5: str | None = Field(
        "7778e84c50b7cde755cca670d1f75091",
        pattern=r"^[0-9a-f]{32}$",
        description="expected MD5 of the downloaded archive (Dataverse's checksum of file 4360331, GEOM release v4 "
        "of 2022-02-11): a mismatch stops the download before anything is extracted; null = not checked",
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="expected sha256 of the downloaded archive (none is published): a mismatch stops the download; "
        "null = not checked, the hash is written beside the archive (<archive>.sha256) to pin here",
    )
    conformers_per_molecule: int = Field(30, ge=1, description="lowest-energy conformers kept (EDM: 30)")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _split_leaves_training(self) -> GeomDrugsSource:
        return fractions_leave_training(self, "data.geom_drugs")


class FilesSource(Section):
    """The user's own molecules: SDF, multi-frame XYZ/extxyz, or Parquet (our molecule schema)."""

    paths: list[str] = Field(default_factory=list, description="input files; format from the extension")
    format: Literal["auto", "sdf", "xyz", "extxyz", "parquet"] = "auto"
    split_column: str | None = Field(None, description="SDF property / Parquet column holding train|valid|test")
    valid_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.1, ge=0, lt=1)
    max_abs_coordinate_ang: float = Field(
        1000.0,
        gt=0,
        le=1e6,
        description="a record with a coordinate beyond this (Å, any axis) is bad: float32 "
        "storage keeps ~1e-4 Å only up to ~1000 Å; beyond, a wrong unit or a corrupt file",
    )
    min_distance_ang: float = Field(
        0.5,
        ge=0,
        description="a record with two atoms closer than this (Å) is bad (the shortest bond, H2, is "
        "0.74 Å): duplicated atoms, all atoms at the origin, a collapse; 0 turns the check off",
    )

    @model_validator(mode="after")
    def _split_leaves_training(self) -> FilesSource:
        return fractions_leave_training(self, "data.files")


class DataFilters(Section):
    """Molecules outside these limits are dropped and counted in stats.json."""

    allowed_elements: list[str] | None = Field(
        None, description="element symbols to keep, e.g. what the force field can score; null keeps all"
    )
    max_atoms: int | None = Field(None, ge=1, description="drop molecules with more atoms; null keeps all")

    @field_validator("allowed_elements")
    @classmethod
    def _known_elements(cls, value: list[str] | None) -> list[str] | None:
        return known_elements(value)


class DataSubset(Section):
    """Keep only the first N molecules of each split after splitting (smoke tests); null keeps all."""

    train: int | None = Field(None, ge=1)
    valid: int | None = Field(None, ge=1)
    test: int | None = Field(None, ge=1)


class DataConfig(Section):
    """The data stage: where molecules come from, how they are split, filtered and checked."""

    dataset: str = Field("qm9", pattern=r"^[A-Za-z0-9_\-]+$", description="name used in results/ paths")
    source: str = Field(
        "qm9pack", description="a registered data source (elign.registries)", json_schema_extra=DATA_SOURCES.schema_enum
    )
    on_error: Literal["raise", "skip"] = Field(
        "raise", description="bad input record: stop with file/record/problem, or skip and count it"
    )
    filters: DataFilters = DataFilters()
    subset: DataSubset = DataSubset()
    figshare: FigshareSource = FigshareSource()
    geom_drugs: GeomDrugsSource = GeomDrugsSource()
    files: FilesSource = FilesSource()

    @field_validator("source")
    @classmethod
    def _registered_source(cls, value: str) -> str:
        return DATA_SOURCES.check(value)

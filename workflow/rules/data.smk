rule prepare_data:
    """Load the dataset, split it (EDM's QM9 split), filter, write Parquet + stats.json."""
    input:
        data_source_files,
    output:
        train="results/data/{dataset}/train.parquet",
        valid="results/data/{dataset}/valid.parquet",
        test="results/data/{dataset}/test.parquet",
        stats="results/data/{dataset}/stats.json",
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "benchmarks/prepare/{dataset}.tsv"
    conda:
        "../../envs/elign.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        config=stage_config("data"),
    shell:
        "elign prepare --config-json {params.config:q} --out-dir $(dirname {output.train}) > {log} 2>&1"


rule geom_drugs_download:
    """GEOM-Drugs: download drugs_crude.msgpack.tar.gz (data.geom_drugs.download_url, ~43 GB; resumes), check its
    MD5 (data.geom_drugs.md5, pinned) and sha256 (data.geom_drugs.sha256, when set), extract drugs_crude.msgpack
    to data.geom_drugs.path. Runs only when that file is missing (a local copy at the path is used as it is)."""
    output:
        config["data"]["geom_drugs"]["path"],
    log:
        "logs/prepare/geom_drugs_download.log",
    conda:
        "../../envs/elign.yaml"
    resources:
        runtime=720,
    params:
        url=config["data"]["geom_drugs"]["download_url"],
        md5=config["data"]["geom_drugs"]["md5"] or "",
        sha256=config["data"]["geom_drugs"]["sha256"] or "",
    shell:
        "(set -euo pipefail; dir=$(dirname {output}); archive=$dir/drugs_crude.msgpack.tar.gz; mkdir -p $dir;"
        " curl -L --fail --retry 5 -C - -o $archive {params.url:q};"
        " md5=$(md5sum $archive | cut -d' ' -f1); echo md5 $md5;"
        " if [ -n '{params.md5}' ] && [ $md5 != '{params.md5}' ]; then echo \"md5 mismatch: $archive has $md5,"
        ' expected {params.md5} (data.geom_drugs.md5): a truncated or different file; delete it and rerun" >&2;'
        " exit 1; fi;"
        " sum=$(sha256sum $archive | cut -d' ' -f1); echo $sum > $archive.sha256; echo sha256 $sum;"
        " if [ -n '{params.sha256}' ] && [ $sum != '{params.sha256}' ]; then"
        ' echo "sha256 mismatch: $archive has $sum, expected {params.sha256} (data.geom_drugs.sha256)" >&2;'
        " exit 1; fi;"
        " tar -xzf $archive -O --no-anchored drugs_crude.msgpack > {output}.tmp && mv {output}.tmp {output})"
        " > {log} 2>&1"

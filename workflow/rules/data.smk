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

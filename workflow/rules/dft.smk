rule dft_select:
    """The DFT molecules, chosen once by mol_id from the baseline's sample alone (report.baseline_model)."""
    input:
        samples=f"results/samples/{{dataset}}/{DFT_BASELINE}.parquet",
        metrics=f"results/metrics/{{dataset}}/{DFT_BASELINE}.parquet",
        summary=f"results/samples/{{dataset}}/{DFT_BASELINE}.summary.json",
        stats="results/data/{dataset}/stats.json",
    output:
        "results/dft/{dataset}/selection.parquet",
    log:
        "logs/dft/{dataset}/selection.log",
    localrule: True
    conda:
        "../../envs/elign.yaml"
    params:
        config=stage_config("dft", "report.baseline_model"),
    shell:
        "elign dft-select --config-json {params.config:q} --samples {input.samples} --metrics {input.metrics}"
        " --summary {input.summary} --stats {input.stats} --out {output} > {log} 2>&1"


rule dft:
    """PySCF single point + analytic forces of one shard of a model's DFT molecules (scatter): the selection's
    mol_ids for a model sampled with the baseline's noise (paired), molecules of the same sizes otherwise.

    A killed shard resumes from its own partial file; finished shards are reused by a rerun.
    """
    input:
        samples="results/samples/{dataset}/{model}.parquet",
        metrics="results/metrics/{dataset}/{model}.parquet",
        summary="results/samples/{dataset}/{model}.summary.json",
        selection="results/dft/{dataset}/selection.parquet",
        stats="results/data/{dataset}/stats.json",
    output:
        "results/dft/{dataset}/{model}/shard_{shard}.parquet",
    log:
        "logs/dft/{dataset}/{model}/shard_{shard}.log",
    benchmark:
        "benchmarks/dft/{dataset}/{model}/shard_{shard}.tsv"
    conda:
        "../../envs/elign.yaml"
    threads: 1  # shards in parallel beat threads within one SCF on a few cores
    resources:
        mem_mb=8000,
        runtime=180,
    params:
        config=stage_config("dft"),
        shards=len(DFT_SHARDS),
        molecules=dft_molecules,
    shell:
        "elign dft --config-json {params.config:q} --samples {input.samples} --metrics {input.metrics}"
        " --selection {input.selection} --sample-summary {input.summary} --stats {input.stats} --shard {wildcards.shard} --of {params.shards} {params.molecules} --threads {threads}"
        " --out {output} > {log} 2>&1"


rule dft_gather:
    """Join a model's DFT shards into one table (every shard must be there)."""
    input:
        expand("results/dft/{{dataset}}/{{model}}/shard_{shard}.parquet", shard=DFT_SHARDS),
    output:
        parquet="results/dft/{dataset}/{model}.parquet",
        summary="results/dft/{dataset}/{model}.summary.json",
    log:
        "logs/dft/{dataset}/{model}/gather.log",
    localrule: True
    conda:
        "../../envs/elign.yaml"
    shell:
        "elign dft-gather --shards {input} --out {output.parquet} --summary {output.summary} > {log} 2>&1"

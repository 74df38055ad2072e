# Statistics (each model against report.baseline_model) and the report folder. Both rules name every input
# file on the command line; the outputs flagged with report(...) appear in `snakemake --report report.html`.


rule statistics:
    """Bootstrap intervals, Welch and Mann-Whitney tests of every model against the baseline, per metric; paired
    tests for a model sampled with the baseline's noise (its sample summary says so)."""
    input:
        metrics=expand("results/metrics/{{dataset}}/{model}.parquet", model=MODELS),
        dft=expand("results/dft/{{dataset}}/{model}.parquet", model=MODELS),
        samples=expand("results/samples/{{dataset}}/{model}.summary.json", model=MODELS),
    output:
        csv=report("results/report/{dataset}/statistics.csv", category="Tables", caption="../report/statistics.rst"),
        markdown="results/report/{dataset}/statistics.md",
    log:
        "logs/report/{dataset}/statistics.log",
    benchmark:
        "benchmarks/report/{dataset}/statistics.tsv"
    localrule: True  # light: tables and figures on the submitting machine, not a cluster job
    conda:
        "../../envs/elign.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=stage_config("report"),
        named=named_inputs(("metrics", MODELS, "metrics"), ("dft", MODELS, "dft"), ("samples", MODELS, "samples")),
    shell:
        "elign stats --config-json {params.config:q} {params.named}"
        " --out {output.csv} --markdown {output.markdown} > {log} 2>&1"


rule report:
    """Tables, figures, example molecules, report.md and a self-contained index.html (results/report/{dataset}/)."""
    input:
        metrics=expand("results/metrics/{{dataset}}/{name}.parquet", name=EVAL_NAMES),
        dft=expand("results/dft/{{dataset}}/{model}.parquet", model=MODELS),
        samples=expand("results/samples/{{dataset}}/{model}.parquet", model=MODELS),
        sample_summaries=expand("results/samples/{{dataset}}/{model}.summary.json", model=MODELS),
        statistics="results/report/{dataset}/statistics.csv",
        pretrain_history="results/models/{dataset}/history.parquet",
        finetune_history="results/models/{dataset}/finetune_history.parquet",
        timing="results/timing/{dataset}/sampling.json",
        backbone="results/models/{dataset}/backbone.json",
        aligned="results/models/{dataset}/aligned.json",
    output:
        html=report("results/report/{dataset}/index.html", category="Report", caption="../report/index.rst"),
        markdown="results/report/{dataset}/report.md",
        metrics_csv=report(
            "results/report/{dataset}/metrics_table.csv", category="Tables", caption="../report/metrics_table.rst"
        ),
        metrics_md="results/report/{dataset}/metrics_table.md",
        headline=report("results/report/{dataset}/headline.csv", category="Tables", caption="../report/headline.rst"),
        pretrain_loss=report(
            "results/report/{dataset}/pretrain_loss.png",
            category="Training",
            caption="../report/pretrain_loss.rst",
            labels={"figure": "pretraining loss"},
        ),
        finetune=report(
            "results/report/{dataset}/finetune_curves.png",
            category="Training",
            caption="../report/finetune_curves.rst",
            labels={"figure": "FED-GRPO curves"},
        ),
        mlff_force=report(
            "results/report/{dataset}/mlff_force_rms.png",
            category="Energies and forces",
            subcategory="MLFF",
            caption="../report/mlff_distributions.rst",
            labels={"figure": "force RMS"},
        ),
        mlff_energy=report(
            "results/report/{dataset}/mlff_energy_per_atom.png",
            category="Energies and forces",
            subcategory="MLFF",
            caption="../report/mlff_distributions.rst",
            labels={"figure": "formation energy per atom"},
        ),
        mlff_relax=report(
            "results/report/{dataset}/mlff_relaxation_energy.png",
            category="Energies and forces",
            subcategory="MLFF",
            caption="../report/mlff_relaxation.rst",
            labels={"figure": "relaxation energy"},
        ),
        dft_force=report(
            "results/report/{dataset}/dft_force_rms.png",
            category="Energies and forces",
            subcategory="DFT",
            caption="../report/dft_distributions.rst",
            labels={"figure": "force RMS"},
        ),
        dft_energy=report(
            "results/report/{dataset}/dft_energy_per_atom.png",
            category="Energies and forces",
            subcategory="DFT",
            caption="../report/dft_distributions.rst",
            labels={"figure": "formation energy per atom"},
        ),
        sizes=report(
            "results/report/{dataset}/sizes.png",
            category="Samples",
            caption="../report/sizes.rst",
            labels={"figure": "molecule sizes"},
        ),
        sampling_time=report(
            "results/report/{dataset}/sampling_time.png",
            category="Samples",
            caption="../report/sampling_time.rst",
            labels={"figure": "sampling time"},
        ),
        molecules=[
            report(
                f"results/report/{{dataset}}/molecules_{model}.png",
                category="Example molecules",
                caption="../report/molecules.rst",
                labels={"model": model},
            )
            for model in MODELS
        ],
    log:
        "logs/report/{dataset}/report.log",
    benchmark:
        "benchmarks/report/{dataset}/report.tsv"
    localrule: True  # light: tables and figures on the submitting machine, not a cluster job
    conda:
        "../../envs/elign.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        config=stage_config("report"),
        named=named_inputs(
            ("metrics", EVAL_NAMES, "metrics"),
            ("dft", MODELS, "dft"),
            ("samples", MODELS, "samples"),
            ("sample-summary", MODELS, "sample_summaries"),
        ),
    shell:
        "elign report --config-json {params.config:q} {params.named} --statistics {input.statistics}"
        " --pretrain-history {input.pretrain_history} --finetune-history {input.finetune_history}"
        " --timing {input.timing} --backbone {input.backbone} --aligned {input.aligned}"
        " --title 'elign report: {wildcards.dataset}'"
        " --out-dir results/report/{wildcards.dataset} > {log} 2>&1"

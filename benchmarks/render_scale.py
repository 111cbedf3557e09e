"""Render the sections of the scale benchmarks, in SPEED.md and in their own files.

``knn_scale.py``, ``patch_speed.py``, ``streaming.py``, ``cluster_scaling.py``
and ``headline.py``, ``onnx_speed.py`` each measure one section. ``speed.py`` puts their records
into ``results/speed.json`` and :mod:`render_speed` calls the functions here;
run alone, a script saves them as its own topic (``knn``, ``patch_speed``,
``streaming``, ``cluster``) and :func:`render` writes its page. Template:
``templates/scale.md``.

Records by section: ``knn_setup`` (command, mode, machine, sizes, target),
``knn`` (one per search), ``knn_accuracy``; ``patch_setup`` (command, mode,
machine, data, the default bank and its AUC gap), ``patch`` (one per size and
bank), ``patch_search`` (one per size and bank); ``streaming`` (peak memory
before and after), ``cache_setup`` and ``cache`` (one per thread count) or
``cache_skipped``; ``cluster_setup`` (sizes, machine, scaling), ``cluster_warm``
(one per variant), ``cluster_cli`` (``single`` and ``dask``);
``headline_setup`` and ``headline`` (one per protocol and model); ``onnx_setup`` (command, mode, machine,
versions, data, or ``skipped``), ``onnx_model`` (one per preset), ``onnx`` (one per preset and scored size),
``onnx_level`` (one per preset and optimization level), ``onnx_quant`` and ``onnx_openvino``.
"""

from __future__ import annotations

from render import Record, Topic, mean_std, template


def render(topic: Topic) -> str:
    """The page of a scale topic run on its own: KNN.md, PATCH_SPEED.md, STREAMING.md, CLUSTER.md, ONNX.md."""
    t = template("scale")
    if topic.name == "onnx":
        return t("onnx_page", section=onnx(topic))
    if topic.name == "knn":
        return t("knn_page", section=knn(topic))
    if topic.name == "patch_speed":
        return t("patch_page", body=patch_body(topic))
    if topic.name == "streaming":
        run = topic.run
        return t("streaming_page", run, cpu=run["machine"]["cpu"], cores=run["machine"]["cores"],
                 load_start=run["machine"]["load"], sections=streaming(topic))
    return cluster(topic)


def knn(topic: Topic) -> str:
    """The kNN-at-scale section: set-up, one row per search, the accuracy figures and the target."""
    t = template("scale")
    setup = topic.one("knn_setup")
    rows = [row.plus(extrapolated="" if row["scored"] == setup["n_test"] else t("knn_extrapolated", row))
            for row in topic.all("knn")]
    if setup["mode"] != "full":
        verdict = t("knn_no_verdict")
    else:
        best = min((row for row in topic.all("knn") if row["scored"] == setup["n_test"]),
                   key=lambda row: row["total_s"])
        met = best["total_s"] <= setup["target_s"]
        verdict = t("knn_verdict_met" if met else "knn_verdict_missed", search=best["search"],
                    ratio=best["total_s"] / setup["target_s"])
    accuracy = topic.one("knn_accuracy")
    projected = "projected_recall" in accuracy
    note = t("knn_projected" if projected else "knn_projected_absent", k=setup["k"], accuracy=accuracy)
    return t("knn", setup, accuracy=accuracy, bank_rows=2 * setup["n_train"],
             rows=t.rows("knn_row", rows), verdict=verdict, projected_note=note)


def patch(topic: Topic) -> str:
    """The patch-speed section of SPEED.md."""
    return template("scale")("patch", body=patch_body(topic))


def _percent(row: Record) -> Record:
    return row.plus(percent=row["ratio"] * 100)


def patch_body(topic: Topic) -> str:
    """Set-up, the bank table, the search table and the default bank, without a heading."""
    t = template("scale")
    setup = topic.one("patch_setup")
    rows = [_percent(r) for r in topic.all("patch")]
    searches = [_percent(r) for r in topic.all("patch_search")]
    faiss = bool(searches) and searches[0].get("faiss") is not None
    suffix = "" if faiss else "_no_faiss"
    reason = t("patch_reason_none") if setup["default_gap"] is None else t("patch_reason", setup)
    at64 = [r for r in rows if r["size"] == 64 and r["ratio"] == setup["default_ratio"]]
    target = (t("patch_target", at64[0], target_pairs_per_s=setup["target_pairs_per_s"],
                ratio=at64[0]["pairs_per_s"] / setup["target_pairs_per_s"]) if at64 else t("patch_no_target"))
    return t("patch_body", setup, rows=t.rows("patch_row", rows), percent=setup["default_ratio"] * 100,
             search_header=t("patch_search_header" + suffix),
             searches=t.rows("patch_search_row" + suffix, searches), reason=reason, target=target)


def streaming(topic: Topic) -> str:
    """The streaming-memory section and the image-cache section (or the line saying it was skipped)."""
    t = template("scale")
    memory = topic.one("streaming")
    partial = "" if memory["n"] == 100_000 else t("streaming_partial", memory)
    skipped = topic.first("cache_skipped")
    if skipped is not None:
        cache = t("cache_skipped", skipped)
    else:
        cache = t("cache", topic.one("cache_setup"), rows=t.rows("cache_row", topic.all("cache")))
    return t("streaming", memory, partial=partial) + "\n\n" + cache


def cluster(topic: Topic) -> str:
    """The cluster-scaling section: warm runs, end-to-end runs and the scaling."""
    t = template("scale")
    setup = topic.one("cluster_setup")
    rows = [t("cluster_single" if r["workers"] is None else "cluster_workers", r)
            for r in topic.all("cluster_warm")]
    dask = topic.one("cluster_cli", run="dask")
    return t("cluster", setup, before=", ".join(f"{x:.2f}" for x in setup["load_before"]),
             after=", ".join(f"{x:.2f}" for x in setup["load_after"]), rows="\n".join(rows),
             single=topic.one("cluster_cli", run="single")["seconds"], dask=dask["seconds"],
             workers=dask["workers"])


def headline(topic: Topic) -> str:
    """RESULTS.md's headline rows re-run: before (from RESULTS.md's records), now, worst task now."""
    t = template("scale")
    rows = [r.plus(before="—" if r["before"] is None else mean_std(r["before"]), now=mean_std(r["now"]))
            for r in topic.all("headline")]
    return t("headline", topic.one("headline_setup"), rows=t.rows("headline_row", rows))


def _banks(shapes: list[list[int]]) -> str:
    return ", ".join(f"{rows:,} x {dims:,}" for rows, dims in shapes)


def onnx(topic: Topic) -> str:
    """The ONNX section: set-up, the exports, the speed rows, optimization levels, int8 and OpenVINO."""
    t = template("scale")
    setup = topic.one("onnx_setup")
    if setup["skipped"] is not None:
        return t("onnx_skipped", setup)
    models = [m.plus(bank_text=_banks(m["banks"]),
                     maps="—" if "maps" not in m["parity_abs"] else f"{m['parity_abs']['maps']:.1e}")
              for m in topic.all("onnx_model")]
    rows, previous = [], None
    for row in topic.all("onnx"):
        same = previous is not None and previous["preset"] == row["preset"]
        growth = t("onnx_growth", row, factor=row["pairs"] / previous["pairs"]) if same else "—"
        rows.append(row.plus(growth=growth))
        previous = row
    quant = topic.one("onnx_quant")
    openvino = topic.one("onnx_openvino")
    return t("onnx", setup, models=t.rows("onnx_model_row", models), rows=t.rows("onnx_row", rows),
             levels=t.rows("onnx_level_row", topic.all("onnx_level")),
             quant=t("onnx_quant" if quant["ok"] else "onnx_quant_failed", quant),
             openvino=t("onnx_openvino" if openvino["ok"] else "onnx_openvino_failed", openvino,
                        threads=setup["threads"], rtol=1e-4, atol=1e-5))

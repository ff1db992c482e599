#!/usr/bin/env bash
# Markdown tables for docs/elm.md from the JSON lines of bench/elm_study.sh:
#   bench/elm_table.sh grid  study.jsonl
#   bench/elm_table.sh sweep sweep.jsonl
#   bench/elm_table.sh full  full.jsonl
set -u
case $1 in
grid)
    echo "| tokenizer | model | split | size | params | train steps | train s | nll nats/code | FD | acc | IS | prec | recall | sampling img/s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    jq -r '"| \(.tokenizer | ascii_upcase) | \(.model | ascii_upcase) | \(if .tokenizer == "vq" then "1x1024" else (if .split == "1" then "1x16" elif .split == "2" then "2x8" else "4x4" end) end) | \(.size) | \(.params) | \(.steps) | \(.train_seconds | round) | \(.nll * 1000 | round / 1000) | \(.fd * 10 | round / 10) | \(.accuracy * 1000 | round / 1000) | \(.is * 100 | round / 100) | \(.precision * 1000 | round / 1000) | \(.recall * 1000 | round / 1000) | \(.images_per_s * 10 | round / 10) |"' "$2"
    ;;
sweep)
    echo "| sweep | cfg | schedule | top-k | FD | acc | IS | prec | recall |"
    echo "|---|---|---|---|---|---|---|---|---|"
    jq -r '"| \(.sweep) | \(.cfg) | \(.cfg_schedule) | \(.top_k) | \(.fd * 10 | round / 10) | \(.accuracy * 1000 | round / 1000) | \(.is * 100 | round / 100) | \(.precision * 1000 | round / 1000) | \(.recall * 1000 | round / 1000) |"' "$2"
    ;;
full)
    echo "| run | samples | cfg | schedule | top-k | FD | acc | IS | prec | recall | sampling img/s |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    jq -r '"| \(.name) | \(.n) | \(.cfg) | \(.cfg_schedule) | \(.top_k) | \(.fd * 100 | round / 100) | \(.accuracy * 10000 | round / 10000) | \(.is * 100 | round / 100) | \(.precision * 1000 | round / 1000) | \(.recall * 1000 | round / 1000) | \(.images_per_s * 10 | round / 10) |"' "$2"
    ;;
*) echo "usage: $0 grid|sweep|full FILE" >&2; exit 2 ;;
esac

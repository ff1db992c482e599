/* tessera CLI: `tessera narformer tokenize|...` — NAR-Former V2
 * (src/models/narformer): networks as token graphs, a graph-aided
 * transformer predicting their latency and accuracy. Results on stdout
 * (one JSON object with --json), progress on stderr. */
#include "cli/args.h"

#include "tessera/narformer.h"
#include "tessera/onnx.h"

#include <string.h>

/* ------------------------------------------------------------ tokenize */

static int cmd_tokenize(const char *prog, int argc, char **argv) {
    const char *onnx = NULL;
    int batch = 0;
    bool tokens = false;
    cli_common cm = {0, 0, false};
    /* the model file may come as the first positional argument */
    if (argc > 0 && argv[0][0] != '-') {
        onnx = argv[0];
        argc--;
        argv++;
    }
    const arg_spec specs[] = {
        {"onnx", ARG_STR, &onnx, "FILE", "ONNX model (also accepted as the first argument)", NULL},
        {"batch", ARG_INT, &batch, "N", "batch size for shapes and FLOPs (default: the file's, 1 if symbolic)", NULL},
        {"tokens", ARG_BOOL, &tokens, NULL, "with --json: include the token matrix and static vector", NULL},
        CLI_COMMON_JSON(&cm),
    };
    int rc = args_parse(prog,
                        "Tokenize a network: one 152-d token per operator output (plus its input), the "
                        "undirected adjacency and the 40-d static vector [batch, GFLOPs, Gparams, Gmem].",
                        specs, (int)(sizeof specs / sizeof specs[0]), argc, argv);
    if (rc != CLI_OK) return rc;
    if (!onnx) return cli_usage_error(prog, "give an ONNX file (tessera narformer tokenize model.onnx)");
    if (batch < 0 || batch > 65536) return cli_usage_error(prog, "--batch must be in 1..65536");
    tsr_onnx_model m;
    tsr_status st = tsr_onnx_load(&m, onnx);
    if (st.code) return cli_fail(st, "the file must be an ONNX model (ModelProto)");
    tsr_nf_graph g;
    st = tsr_nf_graph_from_onnx(&g, &m, batch);
    tsr_onnx_free(&m);
    if (st.code) return cli_fail(st, "the tokenizer covers CNN operators (Conv, pools, BN, activations, Add/Mul, Concat, Flatten, Gemm, ...)");
    float *tok = malloc(sizeof(float) * (size_t)g.n * TSR_NF_TOKEN_DIM);
    float *adj = malloc(sizeof(float) * (size_t)g.n * g.n);
    float sf[TSR_NF_STATIC_DIM];
    TSR_ASSERT(tok && adj);
    tsr_nf_tokenize(&g, tok, adj, sf);
    int n_und = 0;
    for (int i = 0; i < g.n; i++)
        for (int j = i + 1; j < g.n; j++) n_und += adj[(size_t)i * g.n + j] != 0;
    if (cm.json) {
        printf("{\"file\": ");
        cli_json_str(stdout, onnx);
        printf(", \"n_tokens\": %d, \"token_dim\": %d, \"n_edges\": %d, \"batch\": %d, \"gflops\": %.6f, "
               "\"gparams\": %.6f, \"gmem\": %.6f, \"nodes\": [",
               g.n, TSR_NF_TOKEN_DIM, n_und, g.batch, g.flops / 1e9, g.params / 1e9, g.mem / 1e9);
        for (int i = 0; i < g.n; i++) {
            const tsr_nf_node *nd = &g.nodes[i];
            printf("%s{\"op\": \"%s\", \"shape\": [", i ? ", " : "", tsr_nf_op_name(nd->op));
            for (int k = 0; k < nd->ndim; k++) printf("%s%lld", k ? ", " : "", (long long)nd->shape[k]);
            printf("], \"inputs\": [");
            int c = 0;
            for (int e = 0; e < g.n_edges; e++)
                if (g.edst[e] == i) printf("%s%d", c++ ? ", " : "", g.esrc[e]);
            printf("]}");
        }
        printf("]");
        if (tokens) {
            printf(", \"tokens\": [");
            for (int i = 0; i < g.n; i++) {
                printf("%s[", i ? ", " : "");
                for (int k = 0; k < TSR_NF_TOKEN_DIM; k++)
                    printf("%s%.7g", k ? ", " : "", tok[(size_t)i * TSR_NF_TOKEN_DIM + k]);
                printf("]");
            }
            printf("], \"static\": [");
            for (int k = 0; k < TSR_NF_STATIC_DIM; k++) printf("%s%.7g", k ? ", " : "", sf[k]);
            printf("]");
        }
        printf("}\n");
    } else {
        printf("%s: %d tokens x %d, %d undirected edges, batch %d, %.4f GFLOPs, %.4f M params, %.4f G mem\n",
               onnx, g.n, TSR_NF_TOKEN_DIM, n_und, g.batch, g.flops / 1e9, g.params / 1e6, g.mem / 1e9);
        for (int i = 0; i < g.n; i++) {
            const tsr_nf_node *nd = &g.nodes[i];
            printf("%4d %-20s [", i, tsr_nf_op_name(nd->op));
            for (int k = 0; k < nd->ndim; k++) printf("%s%lld", k ? "," : "", (long long)nd->shape[k]);
            printf("]");
            if (nd->n_attr) {
                printf(" attrs");
                for (int a = 0; a < nd->n_attr; a++) printf(" %g", nd->attr[a]);
            }
            printf("\n");
        }
    }
    free(tok);
    free(adj);
    tsr_nf_graph_free(&g);
    return CLI_OK;
}

static const cli_verb g_verbs[] = {
    {"tokenize", "an ONNX network as NAR-Former V2 tokens (152-d), adjacency and static vector", cmd_tokenize},
    {NULL, NULL, NULL},
};

const cli_family cli_family_narformer = {
    "narformer", "NAR-Former V2: networks as token graphs; latency and accuracy prediction", g_verbs};

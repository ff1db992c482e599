"""A PyTorch reference of the SAM family (SAM ViT image encoder, MobileSAM
TinyViT image encoder, prompt encoder, two-way mask decoder) with the
module tree and state-dict names of the official code
(facebookresearch/segment-anything, ChaoningZhang/MobileSAM), written for
tessera's fixtures: segment_anything is not installed here. Sizes are
parameters so the tests can run a reduced model.

Used by tools/refs/gen_sam.py; never needed at run time.
"""
import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


# ------------------------------------------------------------------ ViT (SAM)

class MLPBlock(nn.Module):
    def __init__(self, dim, hidden, act=nn.GELU):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x):
        return self.lin2(self.act(self.lin1(x)))


def rel_lookup(size_q, size_k, rel):
    # equal sizes only (the released models); index q - k + (k - 1)
    q = torch.arange(size_q)[:, None]
    k = torch.arange(size_k)[None, :]
    return rel[(q - k + size_k - 1).long()]


class ViTAttention(nn.Module):
    def __init__(self, dim, heads, input_size):
        super().__init__()
        self.heads = heads
        hd = dim // heads
        self.scale = hd ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, hd))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, hd))

    def forward(self, x):
        B, H, W, _ = x.shape
        qkv = self.qkv(x).reshape(B, H * W, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, B * self.heads, H * W, -1).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        Rh = rel_lookup(H, H, self.rel_pos_h)
        Rw = rel_lookup(W, W, self.rel_pos_w)
        rq = q.reshape(B * self.heads, H, W, -1)
        rel_h = torch.einsum("bhwc,hkc->bhwk", rq, Rh)
        rel_w = torch.einsum("bhwc,wkc->bhwk", rq, Rw)
        attn = (attn.view(-1, H, W, H, W) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).view(
            -1, H * W, H * W)
        attn = attn.softmax(dim=-1)
        x = (attn @ v).view(B, self.heads, H, W, -1).permute(0, 2, 3, 1, 4).reshape(B, H, W, -1)
        return self.proj(x)


def window_partition(x, ws):
    B, H, W, C = x.shape
    ph, pw = (ws - H % ws) % ws, (ws - W % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    x = x.view(B, Hp // ws, ws, Wp // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C), (Hp, Wp)


def window_unpartition(w, ws, pad_hw, hw):
    Hp, Wp = pad_hw
    H, W = hw
    B = w.shape[0] // (Hp * Wp // ws // ws)
    x = w.view(B, Hp // ws, Wp // ws, ws, ws, -1)
    x = x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, Hp, Wp, -1)
    return x[:, :H, :W, :].contiguous()


class ViTBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, window, input_size):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ViTAttention(dim, heads, input_size if window == 0 else (window, window))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, dim * mlp_ratio)
        self.window = window

    def forward(self, x):
        shortcut = x
        x = self.norm1(x)
        if self.window > 0:
            H, W = x.shape[1], x.shape[2]
            x, pad_hw = window_partition(x, self.window)
        x = self.attn(x)
        if self.window > 0:
            x = window_unpartition(x, self.window, pad_hw, (H, W))
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class PatchEmbedViT(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, 16, 16)

    def forward(self, x):
        return self.proj(x).permute(0, 2, 3, 1)


class ImageEncoderViT(nn.Module):
    def __init__(self, img_size, dim, depth, heads, window, global_idx, mlp_ratio=4, out=256):
        super().__init__()
        g = img_size // 16
        self.patch_embed = PatchEmbedViT(dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, g, g, dim))
        self.blocks = nn.ModuleList(
            [ViTBlock(dim, heads, mlp_ratio, 0 if i in global_idx else window, (g, g)) for i in range(depth)])
        self.neck = nn.Sequential(nn.Conv2d(dim, out, 1, bias=False), LayerNorm2d(out),
                                  nn.Conv2d(out, out, 3, padding=1, bias=False), LayerNorm2d(out))

    def forward(self, x):
        x = self.patch_embed(x) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.neck(x.permute(0, 3, 1, 2))


# ------------------------------------------------------------ TinyViT (MobileSAM)

class Conv2d_BN(nn.Sequential):
    def __init__(self, a, b, ks=1, stride=1, pad=0, groups=1, bn_weight_init=1.0):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, 1, groups, bias=False))
        bn = nn.BatchNorm2d(b)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0)
        self.add_module("bn", bn)


class TVPatchEmbed(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.seq = nn.Sequential(Conv2d_BN(3, n // 2, 3, 2, 1), nn.GELU(), Conv2d_BN(n // 2, n, 3, 2, 1))

    def forward(self, x):
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, c, expand):
        super().__init__()
        h = c * expand
        self.conv1 = Conv2d_BN(c, h, 1)
        self.conv2 = Conv2d_BN(h, h, 3, 1, 1, groups=h)
        self.conv3 = Conv2d_BN(h, c, 1, bn_weight_init=0.0)
        self.act = nn.GELU()

    def forward(self, x):
        s = x
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return self.act(x + s)


class PatchMerging(nn.Module):
    # the official rule keeps stride 1 for out dims 320/448/576, i.e. the
    # last merging of every released TinyViT; `last` says the same here
    def __init__(self, res, dim, out, last):
        super().__init__()
        self.res = res
        self.act = nn.GELU()
        self.conv1 = Conv2d_BN(dim, out, 1, 1, 0)
        self.conv2 = Conv2d_BN(out, out, 3, 1 if last else 2, 1, groups=out)
        self.conv3 = Conv2d_BN(out, out, 1, 1, 0)

    def forward(self, x):
        if x.ndim == 3:
            H, W = self.res
            x = x.view(len(x), H, W, -1).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class TVAttention(nn.Module):
    def __init__(self, dim, key_dim, heads, res):
        super().__init__()
        self.heads, self.key_dim, self.scale = heads, key_dim, key_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * key_dim * heads)
        self.proj = nn.Linear(key_dim * heads, dim)
        pts = list(itertools.product(range(res[0]), range(res[1])))
        offs, idxs = {}, []
        for p1 in pts:
            for p2 in pts:
                o = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                if o not in offs:
                    offs[o] = len(offs)
                idxs.append(offs[o])
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offs)))
        self.register_buffer("attention_bias_idxs", torch.LongTensor(idxs).view(len(pts), len(pts)),
                             persistent=False)

    def forward(self, x):
        B, N, _ = x.shape
        x = self.norm(x)
        q, k, v = self.qkv(x).view(B, N, self.heads, -1).split([self.key_dim] * 3, dim=3)
        q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.attention_bias_idxs]
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)


class TVMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.norm(x))))


class TinyViTBlock(nn.Module):
    def __init__(self, dim, res, heads, ws, mlp_ratio, local):
        super().__init__()
        self.res, self.ws = res, ws
        self.attn = TVAttention(dim, dim // heads, heads, (ws, ws))
        self.mlp = TVMlp(dim, dim * mlp_ratio)
        self.local_conv = Conv2d_BN(dim, dim, local, 1, local // 2, groups=dim)

    def forward(self, x):
        H, W = self.res
        B, L, C = x.shape
        res_x = x
        ws = self.ws
        if H == ws and W == ws:
            x = self.attn(x)
        else:
            x = x.view(B, H, W, C)
            pb, pr = (ws - H % ws) % ws, (ws - W % ws) % ws
            if pb or pr:
                x = F.pad(x, (0, 0, 0, pr, 0, pb))
            pH, pW = H + pb, W + pr
            nH, nW = pH // ws, pW // ws
            x = x.view(B, nH, ws, nW, ws, C).transpose(2, 3).reshape(B * nH * nW, ws * ws, C)
            x = self.attn(x)
            x = x.view(B, nH, nW, ws, ws, C).transpose(2, 3).reshape(B, pH, pW, C)
            x = x[:, :H, :W].contiguous().view(B, L, C)
        x = res_x + x
        x = x.transpose(1, 2).reshape(B, C, H, W)
        x = self.local_conv(x).view(B, C, L).transpose(1, 2)
        return x + self.mlp(x)


class ConvLayer(nn.Module):
    def __init__(self, dim, res, depth, out, expand):
        super().__init__()
        self.blocks = nn.ModuleList([MBConv(dim, expand) for _ in range(depth)])
        self.downsample = PatchMerging(res, dim, out, False)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.downsample(x)


class BasicLayer(nn.Module):
    def __init__(self, dim, res, depth, heads, ws, mlp_ratio, local, out, merge, last):
        super().__init__()
        self.blocks = nn.ModuleList([TinyViTBlock(dim, res, heads, ws, mlp_ratio, local) for _ in range(depth)])
        self.downsample = PatchMerging(res, dim, out, last) if merge else None

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    def __init__(self, img_size, dims, depths, heads, windows, mlp_ratio=4, expand=4, local=3, out=256):
        super().__init__()
        self.grid = img_size // 16
        self.patch_embed = TVPatchEmbed(dims[0])
        r = img_size // 4
        self.layers = nn.ModuleList()
        for i in range(4):
            res = r // (2 ** (i - 1 if i == 3 else i))
            if i == 0:
                self.layers.append(ConvLayer(dims[0], (res, res), depths[0], dims[1], expand))
            else:
                self.layers.append(BasicLayer(dims[i], (res, res), depths[i], heads[i], windows[i], mlp_ratio,
                                              local, dims[min(i + 1, 3)], i < 3, i == 2))
        self.neck = nn.Sequential(nn.Conv2d(dims[3], out, 1, bias=False), LayerNorm2d(out),
                                  nn.Conv2d(out, out, 3, padding=1, bias=False), LayerNorm2d(out))

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        B, _, C = x.shape
        x = x.view(B, self.grid, self.grid, C).permute(0, 3, 1, 2)
        return self.neck(x)


# ------------------------------------------------------------ prompt encoder

class PositionEmbeddingRandom(nn.Module):
    def __init__(self, feats, scale=1.0):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, feats)))

    def _pe(self, coords):
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix
        coords = 2 * math.pi * coords
        return torch.cat([torch.sin(coords), torch.cos(coords)], dim=-1)

    def forward(self, size):
        h, w = size
        grid = torch.ones((h, w))
        y = (grid.cumsum(dim=0) - 0.5) / h
        x = (grid.cumsum(dim=1) - 0.5) / w
        return self._pe(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def forward_with_coords(self, coords_in, image_size):
        coords = coords_in.clone()
        coords[:, :, 0] = coords[:, :, 0] / image_size[1]
        coords[:, :, 1] = coords[:, :, 1] / image_size[0]
        return self._pe(coords.to(torch.float))


class PromptEncoder(nn.Module):
    def __init__(self, dim, emb_size, img_size, mask_chans):
        super().__init__()
        self.dim, self.emb_size, self.img_size = dim, emb_size, img_size
        self.pe_layer = PositionEmbeddingRandom(dim // 2)
        self.point_embeddings = nn.ModuleList([nn.Embedding(1, dim) for _ in range(4)])
        self.not_a_point_embed = nn.Embedding(1, dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_chans // 4, 2, 2), LayerNorm2d(mask_chans // 4), nn.GELU(),
            nn.Conv2d(mask_chans // 4, mask_chans, 2, 2), LayerNorm2d(mask_chans), nn.GELU(),
            nn.Conv2d(mask_chans, dim, 1))
        self.no_mask_embed = nn.Embedding(1, dim)

    def get_dense_pe(self):
        return self.pe_layer(self.emb_size).unsqueeze(0)

    def _embed_points(self, points, labels, pad):
        points = points + 0.5
        if pad:
            points = torch.cat([points, torch.zeros((points.shape[0], 1, 2))], dim=1)
            labels = torch.cat([labels, -torch.ones((labels.shape[0], 1))], dim=1)
        pe = self.pe_layer.forward_with_coords(points, self.img_size)
        pe[labels == -1] = 0.0
        pe[labels == -1] += self.not_a_point_embed.weight
        pe[labels == 0] += self.point_embeddings[0].weight
        pe[labels == 1] += self.point_embeddings[1].weight
        return pe

    def _embed_boxes(self, boxes):
        boxes = boxes + 0.5
        pe = self.pe_layer.forward_with_coords(boxes.reshape(-1, 2, 2), self.img_size)
        pe[:, 0, :] += self.point_embeddings[2].weight
        pe[:, 1, :] += self.point_embeddings[3].weight
        return pe

    def forward(self, points, boxes, masks):
        bs = points[0].shape[0] if points is not None else boxes.shape[0] if boxes is not None else masks.shape[0]
        sparse = torch.empty((bs, 0, self.dim))
        if points is not None:
            sparse = torch.cat([sparse, self._embed_points(points[0], points[1], boxes is None)], dim=1)
        if boxes is not None:
            sparse = torch.cat([sparse, self._embed_boxes(boxes)], dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, *self.emb_size)
        return sparse, dense


# -------------------------------------------------------------- mask decoder

class Attention(nn.Module):
    def __init__(self, dim, heads, down=1):
        super().__init__()
        inner = dim // down
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _sep(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q, k, v):
        q, k, v = self._sep(self.q_proj(q)), self._sep(self.k_proj(k)), self._sep(self.v_proj(v))
        attn = (q @ k.permute(0, 1, 3, 2)) / math.sqrt(q.shape[-1])
        out = attn.softmax(-1) @ v
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class TwoWayBlock(nn.Module):
    def __init__(self, dim, heads, mlp_dim, skip_pe):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, 2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, 2)
        self.skip_pe = skip_pe

    def forward(self, queries, keys, query_pe, key_pe):
        if self.skip_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth, dim, heads, mlp_dim):
        super().__init__()
        self.layers = nn.ModuleList([TwoWayBlock(dim, heads, mlp_dim, i == 0) for i in range(depth)])
        self.final_attn_token_to_image = Attention(dim, heads, 2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image, image_pe, point):
        image = image.flatten(2).permute(0, 2, 1)
        image_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries, keys = point, image
        for layer in self.layers:
            queries, keys = layer(queries, keys, point, image_pe)
        q, k = queries + point, keys + image_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


class MLP(nn.Module):
    def __init__(self, i, h, o, n):
        super().__init__()
        dims = [i] + [h] * (n - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, [h] * (n - 1) + [o]))

    def forward(self, x):
        for j, l in enumerate(self.layers):
            x = F.relu(l(x)) if j < len(self.layers) - 1 else l(x)
        return x


class MaskDecoder(nn.Module):
    def __init__(self, dim, depth, heads, mlp_dim, n_multi=3, iou_hidden=256, iou_depth=3):
        super().__init__()
        self.transformer = TwoWayTransformer(depth, dim, heads, mlp_dim)
        self.n_masks = n_multi + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.n_masks, dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, 2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, 2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList([MLP(dim, dim, dim // 8, 3) for _ in range(self.n_masks)])
        self.iou_prediction_head = MLP(dim, iou_hidden, self.n_masks, iou_depth)

    def forward(self, emb, image_pe, sparse, dense, multimask):
        out_tok = torch.cat([self.iou_token.weight, self.mask_tokens.weight], 0)
        out_tok = out_tok.unsqueeze(0).expand(sparse.size(0), -1, -1)
        tokens = torch.cat((out_tok, sparse), dim=1)
        src = torch.repeat_interleave(emb, tokens.shape[0], dim=0) + dense
        pos = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        iou_out, mask_out = hs[:, 0, :], hs[:, 1:1 + self.n_masks, :]
        up = self.output_upscaling(src.transpose(1, 2).view(b, c, h, w))
        hyper = torch.stack([self.output_hypernetworks_mlps[i](mask_out[:, i, :]) for i in range(self.n_masks)],
                            dim=1)
        b, c, h, w = up.shape
        masks = (hyper @ up.view(b, c, h * w)).view(b, -1, h, w)
        iou = self.iou_prediction_head(iou_out)
        sl = slice(1, None) if multimask else slice(0, 1)
        return masks[:, sl], iou[:, sl]


class Sam(nn.Module):
    def __init__(self, image_encoder, img_size, dim=256, mask_chans=16, dec_depth=2, dec_heads=8, dec_mlp=2048,
                 n_multi=3, iou_hidden=256, iou_depth=3):
        super().__init__()
        g = img_size // 16
        self.image_encoder = image_encoder
        self.prompt_encoder = PromptEncoder(dim, (g, g), (img_size, img_size), mask_chans)
        self.mask_decoder = MaskDecoder(dim, dec_depth, dec_heads, dec_mlp, n_multi, iou_hidden, iou_depth)

    def predict(self, emb, points, boxes, masks, multimask):
        sparse, dense = self.prompt_encoder(points, boxes, masks)
        return self.mask_decoder(emb, self.prompt_encoder.get_dense_pe(), sparse, dense, multimask)

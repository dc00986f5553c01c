// Reads a vasa3d-web folder (docs/web_format.md) and rebuilds the Gaussians of any frame.
// The maths is vasa3d_jax/export/web.py's decode_frame, line by line (eqs. 1-8 there):
//   V_t = R_t (n + o_t) + c_t;  r_t = r_mean + sum_j a_tj B_j;
//   per Gaussian on face f: mu = k_f R_f (mu_l + d_mu) + T_f,  R = R_f R(q(d_rot) q_l),
//   s = k_f exp(s_l + d_log_scale),  c = c_l + d_color,  o = sigmoid(logit + d_opacity).
// Output per Gaussian: world mean (3), covariance (6: xx xy xz yy yz zz), colour + opacity (4).

const SH_C0 = 0.28209479177387814;
const SH_C1 = 0.4886025119029199;
const SH_C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396];
const SH_C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
  -0.4570457994644658, 1.445305721320277, -0.5900435899266435];

function halfToFloat(h) {  // IEEE 754 binary16 -> number
  const s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

function view(buffer, spec) {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  switch (spec.dtype) {
    case 'float32': return new Float32Array(buffer, spec.offset, n);
    case 'uint32': return new Uint32Array(buffer, spec.offset, n);
    case 'int16': return new Int16Array(buffer, spec.offset, n);
    case 'float16': {
      const raw = new Uint16Array(buffer, spec.offset, n), out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(raw[i]);
      return out;
    }
    default: throw new Error(`rig.bin: unknown dtype ${spec.dtype}`);
  }
}

async function fetchOk(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r;
}

// frames.bin.gz: inflate unless the server already did (Content-Encoding: gzip); gzip starts 1f 8b.
async function gunzip(buf) {
  const b = new Uint8Array(buf, 0, Math.min(2, buf.byteLength));
  if (b.length < 2 || b[0] !== 0x1f || b[1] !== 0x8b) return buf;
  return new Response(new Blob([buf]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
}

export async function loadRig(base = './') {
  const meta = await (await fetchOk(base + 'rig.json')).json();
  if (meta.format !== 'vasa3d-web' || meta.version !== 1) throw new Error(`unsupported format ${meta.format} v${meta.version}`);
  const [stat, frames] = await Promise.all([
    fetchOk(base + meta.static.file).then((r) => r.arrayBuffer()),
    fetchOk(base + meta.frames_file.file).then((r) => r.arrayBuffer()).then(gunzip)]);
  return parseRig(meta, stat, frames);
}

// The rig from rig.json's object and the contents of rig.bin and frames.bin (ArrayBuffers).
export function parseRig(meta, stat, frames) {
  const a = {};
  for (const [name, spec] of Object.entries(meta.static.arrays)) a[name] = view(stat, spec);
  return new Rig(meta, a, frames);
}

function quatToMat(w, x, y, z, out, o = 0) {  // unit-normalised wxyz -> row-major 3x3 (render/projection.py)
  const n = Math.hypot(w, x, y, z); w /= n; x /= n; y /= n; z /= n;
  out[o] = 1 - 2 * (y * y + z * z); out[o + 1] = 2 * (x * y - w * z); out[o + 2] = 2 * (x * z + w * y);
  out[o + 3] = 2 * (x * y + w * z); out[o + 4] = 1 - 2 * (x * x + z * z); out[o + 5] = 2 * (y * z - w * x);
  out[o + 6] = 2 * (x * z - w * y); out[o + 7] = 2 * (y * z + w * x); out[o + 8] = 1 - 2 * (x * x + y * y);
}

export class Rig {
  constructor(meta, arrays, frames) {
    this.meta = meta; this.a = arrays; this.framesBuf = frames;
    this.n = meta.gaussians; this.nv = meta.vertices; this.nf = meta.faces; this.k = meta.residual_rank;
    this.m = meta.moving_vertices; this.frames = meta.frames; this.fps = meta.fps;
    this.shDegree = meta.sh_degree;  // null: RGB colours
    this.verts = new Float32Array(3 * this.nv);
    this.triRot = new Float32Array(9 * this.nf); this.triK = new Float32Array(this.nf); this.triT = new Float32Array(3 * this.nf);
    this.resid = new Float32Array(13 * this.n);
    this.means = new Float32Array(3 * this.n); this.covs = new Float32Array(6 * this.n); this.rgba = new Float32Array(4 * this.n);
  }

  // Eq. 1: the posed mesh of frame t.
  vertices(t) {
    const rec = this.meta.frames_file.record_bytes, off = t * rec;
    const head = new Float32Array(this.framesBuf, off, 7 + this.k);
    const o = new Int16Array(this.framesBuf, off + 4 * (7 + this.k), 3 * this.m);
    const R = new Float32Array(9); quatToMat(head[0], head[1], head[2], head[3], R);
    const v = this.verts, n = this.a.neutral, mv = this.a.moving, step = this.meta.vertex_step;
    v.set(n);
    for (let i = 0; i < this.m; i++) { const j = 3 * mv[i]; v[j] += o[3 * i] * step; v[j + 1] += o[3 * i + 1] * step; v[j + 2] += o[3 * i + 2] * step; }
    for (let j = 0; j < 3 * this.nv; j += 3) {
      const x = v[j], y = v[j + 1], z = v[j + 2];
      v[j] = R[0] * x + R[1] * y + R[2] * z + head[4];
      v[j + 1] = R[3] * x + R[4] * y + R[5] * z + head[5];
      v[j + 2] = R[6] * x + R[7] * y + R[8] * z + head[6];
    }
    return head;
  }

  // binding.py eqs. (1)-(6): frame of every triangle.
  triangleFrames() {
    const v = this.verts, f = this.a.faces, R = this.triRot;
    for (let i = 0; i < this.nf; i++) {
      const i0 = 3 * f[3 * i], i1 = 3 * f[3 * i + 1], i2 = 3 * f[3 * i + 2];
      const e1x = v[i1] - v[i0], e1y = v[i1 + 1] - v[i0 + 1], e1z = v[i1 + 2] - v[i0 + 2];
      const e2x = v[i2] - v[i0], e2y = v[i2 + 1] - v[i0 + 1], e2z = v[i2 + 2] - v[i0 + 2];
      const l1 = Math.max(Math.hypot(e1x, e1y, e1z), 1e-12);
      const a0x = e1x / l1, a0y = e1y / l1, a0z = e1z / l1;
      let nx = a0y * e2z - a0z * e2y, ny = a0z * e2x - a0x * e2z, nz = a0x * e2y - a0y * e2x;
      const ln = Math.max(Math.hypot(nx, ny, nz), 1e-12); nx /= ln; ny /= ln; nz /= ln;
      // a2 = -normalize(a1 x a0)
      let bx = -(ny * a0z - nz * a0y), by = -(nz * a0x - nx * a0z), bz = -(nx * a0y - ny * a0x);
      const lb = Math.max(Math.hypot(bx, by, bz), 1e-12); bx /= lb; by /= lb; bz /= lb;
      const o = 9 * i;  // row-major, columns (a0, a1, a2)
      R[o] = a0x; R[o + 1] = nx; R[o + 2] = bx;
      R[o + 3] = a0y; R[o + 4] = ny; R[o + 5] = by;
      R[o + 6] = a0z; R[o + 7] = nz; R[o + 8] = bz;
      this.triK[i] = 0.5 * (l1 + Math.abs(bx * e2x + by * e2y + bz * e2z));
      this.triT[3 * i] = (v[i0] + v[i1] + v[i2]) / 3;
      this.triT[3 * i + 1] = (v[i0 + 1] + v[i1 + 1] + v[i2 + 1]) / 3;
      this.triT[3 * i + 2] = (v[i0 + 2] + v[i1 + 2] + v[i2 + 2]) / 3;
    }
  }

  // Eq. 2.
  residual(head) {
    const r = this.resid, len = 13 * this.n;
    r.set(this.a.residual_mean);
    const B = this.a.residual_basis;
    for (let j = 0; j < this.k; j++) {
      const c = head[7 + j], o = j * len;
      if (c !== 0) for (let i = 0; i < len; i++) r[i] += c * B[o + i];
    }
  }

  // Gaussians of frame t seen from camPos (world; for SH colours): fills means, covs, rgba.
  update(t, camPos) {
    const head = this.vertices(t);
    this.triangleFrames();
    this.residual(head);
    const { parent, means_local: ml, quats_local: ql, log_scales: ls, opacity_logits: ol, colors } = this.a;
    const r = this.resid, Rf = this.triRot, RL = new Float32Array(9), M = new Float32Array(9);
    for (let g = 0; g < this.n; g++) {
      const f = parent[g], d = 13 * g, o9 = 9 * f, kf = this.triK[f];
      // mu = k R_f (mu_l + d_mu) + T_f
      const lx = ml[3 * g] + r[d], ly = ml[3 * g + 1] + r[d + 1], lz = ml[3 * g + 2] + r[d + 2];
      for (let i = 0; i < 3; i++) {
        this.means[3 * g + i] = kf * (Rf[o9 + 3 * i] * lx + Rf[o9 + 3 * i + 1] * ly + Rf[o9 + 3 * i + 2] * lz) + this.triT[3 * f + i];
      }
      // q(d_rot) (x) q_l, d_rot axis-angle (binding.py axis_angle_to_quat)
      const rx = r[d + 3], ry = r[d + 4], rz = r[d + 5], th = Math.hypot(rx, ry, rz);
      const h = th > 1e-8 ? Math.sin(0.5 * th) / th : 0.5, aw = Math.cos(0.5 * th), ax = h * rx, ay = h * ry, az = h * rz;
      const bw = ql[4 * g], bx = ql[4 * g + 1], by = ql[4 * g + 2], bz = ql[4 * g + 3];
      quatToMat(aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw, RL);
      const s0 = kf * Math.exp(ls[3 * g] + r[d + 6]), s1 = kf * Math.exp(ls[3 * g + 1] + r[d + 7]), s2 = kf * Math.exp(ls[3 * g + 2] + r[d + 8]);
      // M = R_f R_l diag(s); Sigma = M M^T
      for (let i = 0; i < 3; i++) {
        const a = Rf[o9 + 3 * i], b = Rf[o9 + 3 * i + 1], c = Rf[o9 + 3 * i + 2];
        M[3 * i] = (a * RL[0] + b * RL[3] + c * RL[6]) * s0;
        M[3 * i + 1] = (a * RL[1] + b * RL[4] + c * RL[7]) * s1;
        M[3 * i + 2] = (a * RL[2] + b * RL[5] + c * RL[8]) * s2;
      }
      const cv = this.covs, c6 = 6 * g;
      cv[c6] = M[0] * M[0] + M[1] * M[1] + M[2] * M[2];
      cv[c6 + 1] = M[0] * M[3] + M[1] * M[4] + M[2] * M[5];
      cv[c6 + 2] = M[0] * M[6] + M[1] * M[7] + M[2] * M[8];
      cv[c6 + 3] = M[3] * M[3] + M[4] * M[4] + M[5] * M[5];
      cv[c6 + 4] = M[3] * M[6] + M[4] * M[7] + M[5] * M[8];
      cv[c6 + 5] = M[6] * M[6] + M[7] * M[7] + M[8] * M[8];
      const c4 = 4 * g;
      if (this.shDegree === null) {
        for (let i = 0; i < 3; i++) this.rgba[c4 + i] = colors[3 * g + i] + r[d + 9 + i];
      } else {
        this.shColor(g, camPos, r, d);
      }
      this.rgba[c4 + 3] = 1 / (1 + Math.exp(-(ol[g] + r[d + 12])));
    }
  }

  // render/sh.py: c = max(sum_l Y_l(v) k_l + 0.5, 0), v = normalize(mu - camera centre); + d_color.
  shColor(g, cam, r, d) {
    const K = (this.shDegree + 1) ** 2, C = this.a.colors, o = 3 * K * g;
    let x = this.means[3 * g] - cam[0], y = this.means[3 * g + 1] - cam[1], z = this.means[3 * g + 2] - cam[2];
    const l = Math.hypot(x, y, z) || 1; x /= l; y /= l; z /= l;
    const Y = [SH_C0];
    if (this.shDegree >= 1) Y.push(-SH_C1 * y, SH_C1 * z, -SH_C1 * x);
    if (this.shDegree >= 2) {
      const xx = x * x, yy = y * y, zz = z * z;
      Y.push(SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z, SH_C2[4] * (xx - yy));
      if (this.shDegree >= 3) {
        Y.push(SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
          SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy),
          SH_C3[5] * z * (xx - yy), SH_C3[6] * x * (xx - 3 * yy));
      }
    }
    for (let c = 0; c < 3; c++) {
      let s = 0.5 + r[d + 9 + c];
      for (let j = 0; j < K; j++) s += Y[j] * C[o + 3 * j + c];
      this.rgba[4 * g + c] = Math.max(s, 0);
    }
  }
}

// A small Gaussian splat renderer on three.js (WebGL 2) with gsplat 1.5.3's maths
// (vasa3d_jax/render/projection.py eqs. (1)-(7) and the compositing of kernels/splat):
//   t = R_v mu + t_v;  J with the 0.3 tan(fov) clamp;  Sigma2d = J R_v Sigma R_v^T J^T + 0.3 I;
//   conic = Sigma2d^-1;  r = ceil(min(3.33, sqrt(2 ln(255 o))) sqrt(diag Sigma2d));
//   alpha = min(0.999, o exp(-sigma)), skipped below 1/255;  C = sum c_i alpha_i T_i + T bg.
// Gaussians are sorted back to front by camera z (ties: higher index first, the reverse of gsplat's
// front-to-back order) and blended with premultiplied alpha (ONE, ONE_MINUS_SRC_ALPHA), which is the
// same sum as front-to-back compositing; only gsplat's early stop at T <= 1e-4 is not reproduced.
import * as THREE from 'three';

const VERT = /* glsl */ `
precision highp float;
uniform mat4 viewmat;   // world -> camera, OpenCV axes
uniform vec4 intr;      // fx, fy, cx, cy (pixels, centres at +0.5)
uniform vec2 size;      // W, H
in vec3 position;       // quad corner in {-1, 1}^2
in vec3 iMean;
in vec3 iCovA;          // Sigma xx, xy, xz
in vec3 iCovB;          // Sigma yy, yz, zz
in vec4 iColor;         // rgb, opacity
flat out vec4 vColor;
flat out vec3 vConic;
flat out vec2 vCenter;
void cull() { gl_Position = vec4(0.0, 0.0, 2.0, 1.0); }
void main() {
  vec3 t = (viewmat * vec4(iMean, 1.0)).xyz;
  if (t.z < 0.01) { cull(); return; }
  mat3 Rv = mat3(viewmat);
  mat3 S = mat3(iCovA.x, iCovA.y, iCovA.z, iCovA.y, iCovB.x, iCovB.y, iCovA.z, iCovB.y, iCovB.z);
  mat3 Sc = Rv * S * transpose(Rv);
  float fx = intr.x, fy = intr.y, cx = intr.z, cy = intr.w;
  float tanx = 0.5 * size.x / fx, tany = 0.5 * size.y / fy;
  float u = t.z * clamp(t.x / t.z, -(cx / fx + 0.3 * tanx), (size.x - cx) / fx + 0.3 * tanx);
  float v = t.z * clamp(t.y / t.z, -(cy / fy + 0.3 * tany), (size.y - cy) / fy + 0.3 * tany);
  // J as columns: d(pixel)/d(t) = [[fx/z, 0, -fx u/z^2], [0, fy/z, -fy v/z^2]]
  mat3 J = mat3(fx / t.z, 0.0, 0.0, 0.0, fy / t.z, 0.0, -fx * u / (t.z * t.z), -fy * v / (t.z * t.z), 0.0);
  mat3 C = J * Sc * transpose(J);
  float s00 = C[0][0] + 0.3, s11 = C[1][1] + 0.3, s01 = C[1][0];
  float det = s00 * s11 - s01 * s01;
  float op = iColor.a;
  if (det <= 0.0 || op < 1.0 / 255.0) { cull(); return; }
  float e = min(3.33, sqrt(2.0 * log(op * 255.0)));
  vec2 r = ceil(e * sqrt(vec2(s00, s11)));
  vec2 m = vec2(fx * t.x / t.z + cx, fy * t.y / t.z + cy);
  if (m.x + r.x <= 0.0 || m.x - r.x >= size.x || m.y + r.y <= 0.0 || m.y - r.y >= size.y) { cull(); return; }
  vec2 p = m + position.xy * r;
  gl_Position = vec4(2.0 * p.x / size.x - 1.0, 1.0 - 2.0 * p.y / size.y, 0.0, 1.0);
  vColor = iColor;
  vConic = vec3(s11 / det, -s01 / det, s00 / det);
  vCenter = m;
}`;

const FRAG = /* glsl */ `
precision highp float;
uniform vec2 size;
flat in vec4 vColor;
flat in vec3 vConic;
flat in vec2 vCenter;
out vec4 fragColor;
void main() {
  vec2 d = vCenter - vec2(gl_FragCoord.x, size.y - gl_FragCoord.y);
  float sigma = 0.5 * (vConic.x * d.x * d.x + vConic.z * d.y * d.y) + vConic.y * d.x * d.y;
  float alpha = min(0.999, vColor.a * exp(-sigma));
  if (sigma < 0.0 || alpha < 1.0 / 255.0) discard;
  fragColor = vec4(vColor.rgb * alpha, alpha);
}`;

export class SplatRenderer {
  constructor(canvas, n, background) {
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false, alpha: false, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(1);
    this.renderer.outputColorSpace = THREE.LinearSRGBColorSpace;  // colours are written as given
    this.renderer.setClearColor(new THREE.Color().setRGB(...background, THREE.LinearSRGBColorSpace), 1);
    this.n = n;
    const geo = new THREE.InstancedBufferGeometry();
    geo.setAttribute('position', new THREE.BufferAttribute(new Float32Array([-1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 1, 0]), 3));
    geo.setIndex([0, 1, 2, 0, 2, 3]);
    this.attrs = {};
    for (const [name, k] of [['iMean', 3], ['iCovA', 3], ['iCovB', 3], ['iColor', 4]]) {
      const a = new THREE.InstancedBufferAttribute(new Float32Array(k * n), k);
      a.setUsage(THREE.DynamicDrawUsage);
      geo.setAttribute(name, a);
      this.attrs[name] = a;
    }
    geo.instanceCount = n;
    this.uniforms = { viewmat: { value: new THREE.Matrix4() }, intr: { value: new THREE.Vector4() }, size: { value: new THREE.Vector2() } };
    const mat = new THREE.RawShaderMaterial({
      glslVersion: THREE.GLSL3, vertexShader: VERT, fragmentShader: FRAG, uniforms: this.uniforms,
      depthTest: false, depthWrite: false, transparent: true, blending: THREE.CustomBlending,
      blendEquation: THREE.AddEquation, blendSrc: THREE.OneFactor, blendDst: THREE.OneMinusSrcAlphaFactor,
      blendEquationAlpha: THREE.AddEquation, blendSrcAlpha: THREE.OneFactor, blendDstAlpha: THREE.OneMinusSrcAlphaFactor,
      premultipliedAlpha: true, side: THREE.DoubleSide,  // quads are mirrored (pixel y points down)
    });
    this.mesh = new THREE.Mesh(geo, mat);
    this.mesh.frustumCulled = false;
    this.scene = new THREE.Scene();
    this.scene.add(this.mesh);
    this.dummyCamera = new THREE.Camera();
    this.order = new Uint32Array(n);
    this.depth = new Float32Array(n);
  }

  // viewmat: row-major 16 (world -> OpenCV camera); K: fx, fy, cx, cy; gaussians from Rig.update.
  draw(rig, viewmat, K, width, height) {
    const V = viewmat, n = this.n, m = rig.means;
    for (let i = 0; i < n; i++) {
      this.order[i] = i;
      this.depth[i] = V[8] * m[3 * i] + V[9] * m[3 * i + 1] + V[10] * m[3 * i + 2] + V[11];
    }
    const depth = this.depth;
    this.order.sort((a, b) => (depth[b] - depth[a]) || (b - a));  // far first
    const { iMean, iCovA, iCovB, iColor } = this.attrs;
    const M = iMean.array, A = iCovA.array, B = iCovB.array, C = iColor.array, cv = rig.covs, col = rig.rgba;
    for (let s = 0; s < n; s++) {
      const g = this.order[s];
      M[3 * s] = m[3 * g]; M[3 * s + 1] = m[3 * g + 1]; M[3 * s + 2] = m[3 * g + 2];
      A[3 * s] = cv[6 * g]; A[3 * s + 1] = cv[6 * g + 1]; A[3 * s + 2] = cv[6 * g + 2];
      B[3 * s] = cv[6 * g + 3]; B[3 * s + 1] = cv[6 * g + 4]; B[3 * s + 2] = cv[6 * g + 5];
      C[4 * s] = col[4 * g]; C[4 * s + 1] = col[4 * g + 1]; C[4 * s + 2] = col[4 * g + 2]; C[4 * s + 3] = col[4 * g + 3];
    }
    for (const a of Object.values(this.attrs)) a.needsUpdate = true;
    this.uniforms.viewmat.value.set(...V);  // Matrix4.set takes row-major
    this.uniforms.intr.value.set(K[0], K[1], K[2], K[3]);
    this.uniforms.size.value.set(width, height);
    if (this.renderer.domElement.width !== width || this.renderer.domElement.height !== height) {
      this.renderer.setSize(width, height, false);
    }
    this.renderer.render(this.scene, this.dummyCamera);
  }
}

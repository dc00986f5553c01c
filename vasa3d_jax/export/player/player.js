// The vasa3d web player: loads the rig (rig.js), renders with splat.js, plays the audio and keeps
// the frame in step with it; orbit/zoom with the mouse (three.js OrbitControls).
// window.player is also the page's test interface: await player.ready; player.seek(k);
// player.setView('front'); player.play(); player.fps; player.renderedFrame.
import * as THREE from 'three';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
import { loadRig } from './rig.js';
import { SplatRenderer } from './splat.js';

const query = new URLSearchParams(location.search);
const $ = (id) => document.getElementById(id);

class Player {
  constructor() {
    this.playing = false; this.frame = 0; this.renderedFrame = -1; this.dirty = true;
    this.renderTimes = []; this.fps = 0; this.renders = 0;
    this.ready = this.init().catch((err) => { $('status').textContent = `error: ${err.message}`; console.error(err); throw err; });
  }

  async init() {
    this.rig = await loadRig('./');
    const meta = this.rig.meta, cam = meta.camera;
    this.size = Number(query.get('size')) || cam.size;
    const canvas = $('view');
    canvas.width = canvas.height = this.size;
    canvas.style.width = canvas.style.height = `${this.size}px`;
    this.splat = new SplatRenderer(canvas, this.rig.n, meta.background);
    this.camera = new THREE.PerspectiveCamera(cam.fov_y_deg, 1, 0.01, 100);
    this.controls = new OrbitControls(this.camera, canvas);
    this.controls.addEventListener('change', () => { this.dirty = true; });
    this.setView('front');
    if (meta.audio) {
      this.audio = new Audio(meta.audio);
      this.audio.preload = 'auto';
      this.audio.addEventListener('ended', () => this.pause());
    }
    const slider = $('scrub');
    slider.max = String(this.rig.frames - 1);
    slider.addEventListener('input', () => this.seek(Number(slider.value)));
    $('play').addEventListener('click', () => (this.playing ? this.pause() : this.play()));
    $('front').addEventListener('click', () => this.setView('front'));
    const gl = this.splat.renderer.getContext(), dbg = gl.getExtension('WEBGL_debug_renderer_info');
    this.glRenderer = dbg ? gl.getParameter(dbg.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    $('status').textContent = `${this.rig.n} Gaussians, ${this.rig.frames} frames at ${this.rig.fps} fps` +
      `${meta.audio ? ' with sound' : ''}; WebGL: ${this.glRenderer}`;
    this.render(0);
    requestAnimationFrame((t) => this.loop(t));
  }

  setView(name) {
    if (name !== 'front') throw new Error(`unknown view ${name}`);
    const cam = this.rig.meta.camera;
    this.camera.up.set(...cam.up);
    this.camera.position.set(...cam.eye);
    this.controls.target.set(...cam.target);
    this.camera.lookAt(...cam.target);
    this.controls.update();
    this.dirty = true;
    if (!this.playing) this.render(this.frame);
  }

  clockFrame(now) {
    const t = this.audio ? this.audio.currentTime : this.startFrame / this.rig.fps + (now - this.startTime) / 1000;
    return Math.min(this.rig.frames - 1, Math.floor(t * this.rig.fps));
  }

  loop(now) {
    if (this.playing) {
      this.frame = this.clockFrame(now);
      if (!this.audio && this.frame >= this.rig.frames - 1) this.pause();
    }
    if (this.frame !== this.renderedFrame || this.dirty) this.render(this.frame);
    requestAnimationFrame((t) => this.loop(t));
  }

  // Row-major world -> OpenCV camera matrix and (fx, fy, cx, cy) of the current view.
  cameraMatrices() {
    this.camera.updateMatrixWorld();
    const e = this.camera.matrixWorldInverse.elements, V = new Array(16);  // column-major, OpenGL axes
    for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) V[4 * r + c] = (r === 1 || r === 2 ? -1 : 1) * e[4 * c + r];
    const f = 0.5 * this.size / Math.tan(THREE.MathUtils.degToRad(this.camera.fov) / 2);
    return [V, [f, f, this.size / 2, this.size / 2]];
  }

  render(frame) {
    const [V, K] = this.cameraMatrices();
    const p = this.camera.position;
    this.rig.update(frame, [p.x, p.y, p.z]);
    this.splat.draw(this.rig, V, K, this.size, this.size);
    this.renderedFrame = frame; this.dirty = false; this.renders++;
    const now = performance.now();
    this.renderTimes.push(now);
    while (this.renderTimes.length && this.renderTimes[0] < now - 1000) this.renderTimes.shift();
    this.fps = this.renderTimes.length;
    $('fps').textContent = `${this.fps} FPS`;
    $('scrub').value = String(frame);
    $('time').textContent = `${(frame / this.rig.fps).toFixed(2)} / ${(this.rig.frames / this.rig.fps).toFixed(2)} s (frame ${frame})`;
  }

  seek(k) {
    this.frame = Math.max(0, Math.min(this.rig.frames - 1, Math.round(k)));
    if (this.audio) this.audio.currentTime = this.frame / this.rig.fps;
    this.startFrame = this.frame; this.startTime = performance.now();
    this.render(this.frame);
    return this.frame;
  }

  async play() {
    if (this.frame >= this.rig.frames - 1) this.seek(0);
    this.startFrame = this.frame; this.startTime = performance.now();
    this.playing = true;
    $('play').textContent = 'Pause';
    if (this.audio) {
      try { await this.audio.play(); } catch (err) {  // autoplay blocked: play silently on the clock
        console.warn(`audio blocked (${err.message}); playing without sound`);
        this.audio = null;
      }
    }
  }

  pause() {
    this.playing = false;
    if (this.audio) this.audio.pause();
    $('play').textContent = 'Play';
  }
}

window.player = new Player();

// A minimal W3C WebDriver client (plain `fetch`, no dependencies) for the browsers Playwright cannot drive
// here: Debian's Firefox ESR (through geckodriver) and WebKitGTK (through WebKitWebDriver, which starts
// MiniBrowser; it needs a display, so it runs under `xvfb-run -a`). scripts/setup-browsers.sh installs them.
//
//   const driver = await startDriver("firefox");
//   try { const s = await driver.session(); await s.navigate(url); ... } finally { await driver.stop(); }
//
// Every request is bounded in time; `stop()` (also run at process exit) kills the driver's whole process
// group: the driver, the browser it started and, for WebKitGTK, Xvfb.
import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:net";

const STATUS_TIMEOUT_MS = 30_000; // the driver answering ready
const SESSION_TIMEOUT_MS = 60_000; // the browser starting
const COMMAND_TIMEOUT_MS = 30_000; // any other command
export const SCRIPT_TIMEOUT_MS = 120_000; // an execute/async script (the session's script timeout)

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

const which = (name) => {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
};

/** An error the driver returned: `.error` is the WebDriver error code ("script timeout", ...). */
export class WebDriverError extends Error {
  constructor(command, value, status) {
    super(`${command}: ${value?.error ?? `HTTP ${status}`}: ${value?.message ?? JSON.stringify(value)}`);
    this.error = value?.error;
    this.status = status;
  }
}

async function request(base, method, path, body, timeoutMs = COMMAND_TIMEOUT_MS) {
  const command = `${method} ${path}`;
  let res;
  try {
    res = await fetch(base + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json; charset=utf-8" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    throw new Error(`${command}: no answer from the driver (${e?.name === "TimeoutError" ? `${timeoutMs} ms` : e?.message ?? e})`);
  }
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new WebDriverError(command, { error: "invalid response", message: text.slice(0, 300) }, res.status);
  }
  if (!res.ok || (json?.value && typeof json.value === "object" && typeof json.value.error === "string" && json.value.error)) {
    throw new WebDriverError(command, json?.value, res.status);
  }
  return json.value;
}

/** The capabilities `POST /session` asks for. */
function capabilities(browser, binary) {
  if (browser === "firefox") {
    return {
      browserName: "firefox",
      acceptInsecureCerts: true,
      "moz:firefoxOptions": {
        ...(binary ? { binary } : {}),
        args: ["-headless"],
        prefs: {
          // No first-run pages, updates or telemetry (geckodriver sets most of these; these make sure).
          "browser.shell.checkDefaultBrowser": false,
          "browser.startup.homepage_override.mstone": "ignore",
          "datareporting.policy.dataSubmissionEnabled": false,
          "toolkit.telemetry.reportingpolicy.firstRun": false,
          "app.update.disabledForTesting": true,
          // Errors and warnings of the page reach geckodriver's log.
          "devtools.console.stdout.content": true,
        },
      },
    };
  }
  // No browserName: WebKitWebDriver matches it against the browser it starts (MiniBrowser by default).
  return {
    "webkitgtk:browserOptions": { ...(binary ? { binary } : {}), args: ["--automation"] },
  };
}

/**
 * Starts the driver for `browser` ("firefox" or "webkit") on a free loopback port and waits until its
 * `/status` says ready. `log(line)` receives the driver's (and browser's) output.
 */
export async function startDriver(browser, { log = () => {} } = {}) {
  const port = await freePort();
  let cmd;
  let args;
  let binary = null;
  if (browser === "firefox") {
    cmd = process.env.GECKODRIVER ?? which("geckodriver") ?? `${process.env.HOME}/.cargo/bin/geckodriver`;
    args = ["--port", String(port), "--host", "127.0.0.1"];
    binary = process.env.FIREFOX ?? which("firefox-esr") ?? which("firefox");
  } else if (browser === "webkit") {
    const driver = process.env.WEBKIT_WEBDRIVER ?? which("WebKitWebDriver");
    if (!driver) throw new Error("WebKitWebDriver is not installed (bash scripts/setup-browsers.sh)");
    binary = process.env.WEBKIT_BROWSER ?? null; // default: the MiniBrowser of webkit2gtk
    if (process.env.DISPLAY) {
      cmd = driver;
      args = [`--port=${port}`];
    } else {
      cmd = "xvfb-run";
      args = ["-a", "-s", "-screen 0 1280x1024x24 -nolisten tcp", driver, `--port=${port}`];
    }
  } else {
    throw new Error(`unknown browser ${JSON.stringify(browser)} (firefox or webkit)`);
  }

  // Its own process group, so stop() ends the driver, the browser and Xvfb at once.
  const proc = spawn(cmd, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, MOZ_HEADLESS: "1" } });
  let exited = null;
  const exitedP = new Promise((ok) =>
    proc.on("exit", (code, signal) => {
      exited = signal ?? code;
      ok();
    }),
  );
  proc.on("error", (e) => {
    exited = e.message;
  });
  for (const s of [proc.stdout, proc.stderr]) {
    let rest = "";
    s.setEncoding("utf8");
    s.on("data", (d) => {
      const lines = (rest + d).split("\n");
      rest = lines.pop();
      for (const l of lines) if (l.trim()) log(l);
    });
  }

  const killGroup = (signal) => {
    if (proc.pid === undefined) return;
    try {
      process.kill(-proc.pid, signal);
    } catch {
      // already gone
    }
  };
  const onExit = () => killGroup("SIGKILL");
  const onSignal = (signal) => {
    killGroup("SIGKILL");
    process.exit(128 + (signal === "SIGINT" ? 2 : 15));
  };
  process.on("exit", onExit);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const base = `http://127.0.0.1:${port}`;
  const sessions = new Set();
  const driver = {
    browser,
    base,
    /** Ends every session, then the process group (SIGTERM, then SIGKILL after 3 s). */
    async stop() {
      for (const s of sessions) await s.quit().catch(() => {});
      if (exited === null) {
        killGroup("SIGTERM");
        await Promise.race([exitedP, new Promise((ok) => setTimeout(ok, 3000))]);
      }
      killGroup("SIGKILL"); // the browser or Xvfb may outlive the driver
      process.off("exit", onExit);
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
    /** `POST /session`; the session's script timeout is SCRIPT_TIMEOUT_MS. */
    async session() {
      const value = await request(base, "POST", "/session", { capabilities: { alwaysMatch: capabilities(browser, binary) } }, SESSION_TIMEOUT_MS);
      const s = new Session(base, value.sessionId, value.capabilities);
      sessions.add(s);
      s.onQuit = () => sessions.delete(s);
      await s.cmd("POST", "/timeouts", { script: SCRIPT_TIMEOUT_MS, pageLoad: 60_000 });
      return s;
    },
  };

  const t0 = Date.now();
  for (;;) {
    if (exited !== null) throw new Error(`${cmd} exited (${exited}) before it was ready`);
    try {
      const status = await request(base, "GET", "/status", undefined, 2000);
      if (status?.ready !== false) break;
    } catch {
      // not listening yet
    }
    if (Date.now() - t0 > STATUS_TIMEOUT_MS) {
      await driver.stop();
      throw new Error(`${cmd} was not ready after ${STATUS_TIMEOUT_MS} ms`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return driver;
}

/** One WebDriver session: its windows (tabs) and scripts. */
export class Session {
  constructor(base, id, caps) {
    this.base = base;
    this.id = id;
    this.capabilities = caps;
    this.current = null; // the handle commands go to
    this.onQuit = () => {};
  }

  /** The browser's name and version, as the driver reports them. */
  get version() {
    return `${this.capabilities?.browserName ?? "?"} ${this.capabilities?.browserVersion ?? "?"}`;
  }

  cmd(method, path, body, timeoutMs) {
    return request(this.base, method, `/session/${this.id}${path}`, body, timeoutMs);
  }

  async handle() {
    this.current ??= await this.cmd("GET", "/window");
    return this.current;
  }

  handles() {
    return this.cmd("GET", "/window/handles");
  }

  /** Switches to the window `handle` (nothing to do if commands already go there). */
  async switchTo(handle) {
    if (this.current === handle) return;
    await this.cmd("POST", "/window", { handle });
    this.current = handle;
  }

  /** Opens a new tab (a window where the browser has no tabs) and returns its handle; commands stay where they went. */
  async newTab() {
    const { handle } = await this.cmd("POST", "/window/new", { type: "tab" });
    return handle;
  }

  /** Closes the current window; commands go nowhere until the next switchTo(). */
  async closeWindow() {
    const left = await this.cmd("DELETE", "/window");
    this.current = null;
    return left;
  }

  navigate(url) {
    return this.cmd("POST", "/url", { url }, 70_000);
  }

  refresh() {
    return this.cmd("POST", "/refresh", {}, 70_000);
  }

  execute(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }

  /** Runs `script` (its last argument is the callback); bounded by the script timeout, plus a margin. */
  executeAsync(script, args = []) {
    return this.cmd("POST", "/execute/async", { script, args }, SCRIPT_TIMEOUT_MS + 15_000);
  }

  async quit() {
    this.onQuit();
    await this.cmd("DELETE", "", undefined, 15_000);
  }
}

// Browser tests of the web UI: a real node, real studies sent with storescu,
// Debian's chromium driven by playwright-core. Screenshots of every page go
// to $DCMSTREAMS_ARTIFACTS (tests/artifacts/ by default).
//
//   node --test tests/browser/ui_test.mjs   (ctest runs it as browser.ui)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const source = process.env.DCMSTREAMS_SOURCE_DIR || fileURLToPath(new URL("../..", import.meta.url));
const binary = process.env.DCMSTREAMS_BINARY || path.join(source, "build/main/dcmstreams");
const artifacts = process.env.DCMSTREAMS_ARTIFACTS || path.join(source, "tests/artifacts");
const env = { ...process.env, TCP_NODELAY: "1" };

const work = fs.mkdtempSync(path.join(os.tmpdir(), "dcmstreams-ui-"));
let nodeExit = null;
let stopping = false;
let node, worker, browser, base, dicomPort;

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function userEntry(name, password, role) {
  const made = spawnSync(binary, ["passwd", "--name", name, "--role", role], { input: password + "\n", env });
  assert.equal(made.status, 0, made.stderr.toString());
  return JSON.parse(made.stdout.toString());
}

function synth(name, instances) {
  const out = path.join(work, name);
  execFileSync(binary, ["synth", "--out", out, "--series", "1", "--instances", String(instances),
    "--rows", "48", "--cols", "48"], { env });
  return out;
}

function storescu(ae, folder) {
  const sent = spawnSync("storescu", ["-aec", ae, "+sd", "+r", "127.0.0.1", String(dicomPort), folder], { env });
  assert.equal(sent.status, 0, sent.stderr.toString());
}

async function waitFor(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) { /* not yet */ }
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function zipNames(file) {
  const listed = spawnSync("python3", ["-c",
    "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))", file]);
  assert.equal(listed.status, 0, listed.stderr.toString());
  return listed.stdout.toString().trim().split("\n");
}

async function logIn(name, password) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1366, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => { throw e; });
  await page.goto(base + "/");
  await page.waitForSelector("#login[open]");
  await page.fill("#login-name", name);
  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await page.waitForSelector("[data-testid=stream]");
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, name + ".png"), fullPage: true });
}

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  dicomPort = await freePort();
  const webPort = await freePort();
  const clusterPort = await freePort();
  base = `http://127.0.0.1:${webPort}`;
  const streams = path.join(work, "streams");
  fs.cpSync(path.join(source, "streams/library/stats"), path.join(streams, "stats"), { recursive: true });
  fs.mkdirSync(path.join(streams, "hold"));
  // A stream whose studies wait an hour: the pending-studies page completes it.
  fs.writeFileSync(path.join(streams, "hold", "info.json"), JSON.stringify({
    name: "Hold", description: "Waits for a click", AETitle: "HOLD", command: ["/bin/true"], quiet_period_s: 3600,
  }));
  fs.writeFileSync(path.join(work, "dcmstreams.json"), JSON.stringify({
    data_dir: "data", streams_dir: "streams", routing_file: "routing.json",
    dicom: { port: dicomPort, bind: "127.0.0.1" },
    web: { port: webPort, bind: "127.0.0.1",
      users: [userEntry("ada", "admin-secret", "admin"), userEntry("vic", "viewer-secret", "viewer")] },
    completion: { quiet_period_s: 1 }, storage: { reserve_free_mb: 1 },
    cluster: { port: clusterPort },
  }));
  node = spawn(binary, ["serve", "--config", path.join(work, "dcmstreams.json")],
    { env, stdio: ["ignore", fs.openSync(path.join(work, "node.log"), "w"), fs.openSync(path.join(work, "node.log"), "a")] });
  // A node that ends before the tests do is a failure of its own: say how it ended.
  node.once("exit", (code, signal) => {
    nodeExit = { code, signal };
    if (!stopping) console.error(`dcmstreams serve ended during the tests: code ${code}, signal ${signal}`);
  });
  await waitFor("the node", async () => (await fetch(base + "/healthz")).ok, 20000);
  // A worker, for the status page's list of workers.
  worker = spawn(binary, ["worker", "--join", `127.0.0.1:${clusterPort}`, "--name", "browser-worker",
    "--data", path.join(work, "worker")],
    { env, stdio: ["ignore", fs.openSync(path.join(work, "worker.log"), "w"), fs.openSync(path.join(work, "worker.log"), "a")] });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run"],
  });
});

after(async () => {
  stopping = true;
  try {
    if (browser) await browser.close();
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker.once("exit", r));
      worker.kill("SIGTERM");
      await exited;
    }
    if (node && !nodeExit) {
      const exited = new Promise((r) => node.once("exit", r));
      node.kill("SIGTERM");
      await exited;
    }
  } finally {
    // The node's log is kept whatever happened, for the one who reads the failure.
    fs.copyFileSync(path.join(work, "node.log"), path.join(artifacts, "ui-node.log"));
    fs.rmSync(work, { recursive: true, force: true });
  }
});

test("an admin watches a study become a job live, reads its log and downloads its results", async () => {
  const page = await logIn("ada", "admin-secret");
  const stats = page.locator("[data-testid=stream][data-ae=STATS]");
  await stats.waitFor();
  assert.match(await stats.innerText(), /storescu -aet MYSCU -aec STATS \+sd \+r 127\.0\.0\.1/);
  await shot(page, "streams");

  await page.goto(base + "/#/jobs");
  await page.waitForSelector("#job-rows");
  await page.evaluate(() => { window.notReloaded = true; });
  storescu("STATS", synth("study", 8));
  // The row appears and turns green through the event feed, without a reload.
  await page.waitForSelector("[data-testid=job-row] .state.success", { timeout: 30000 });
  assert.equal(await page.evaluate(() => window.notReloaded), true);
  await shot(page, "jobs");

  await page.click("[data-testid=job-row]");
  await page.waitForSelector("[data-testid=measures]");
  await waitFor("the log", async () => /starts/.test(await page.textContent("#job-log")));
  assert.match(await page.textContent("[data-testid=measures]"), /voxels_above_threshold/);
  // Who and what, taken at intake.
  assert.match(await page.textContent("[data-testid=detail-patient]"), /SYNTHETIC/);
  await waitFor("the routing dry run", async () =>
    /dry run/.test(await page.textContent("[data-testid=routing-preview]")));
  // The stats stream's histogram as a chart, one bar per bin.
  assert.equal(await page.locator("[data-testid=histogram] rect").count(), 64);
  // The series as a thumbnail the node rendered, then the slice viewer.
  const thumbnail = page.locator("[data-testid=thumbnail] img");
  await thumbnail.waitFor();
  const loaded = (img) => img.evaluate((e) => e.complete && e.naturalWidth > 0);
  await waitFor("the thumbnail's picture", () => loaded(thumbnail));
  assert.equal(await thumbnail.evaluate((e) => e.naturalWidth), 48);
  await page.click("[data-testid=thumbnail]");
  const slice = page.locator("[data-testid=viewer-image]");
  await waitFor("the middle slice", async () => (await loaded(slice)) &&
    /slice=4&/.test(await slice.getAttribute("src")));
  assert.equal(await page.textContent("[data-testid=viewer-position]"), "5 of 8");
  await slice.focus();
  await page.keyboard.press("ArrowDown");
  await waitFor("the next slice", async () => /slice=5&/.test(await slice.getAttribute("src")) && (await loaded(slice)));
  await page.selectOption("[data-testid=viewer-window]", "lung");
  await waitFor("the lung window", async () => /window=lung/.test(await slice.getAttribute("src")) && (await loaded(slice)));
  await shot(page, "job");

  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download-output")]);
  const saved = path.join(work, "output.zip");
  await download.saveAs(saved);
  assert.deepEqual(zipNames(saved), ["job-1-OUTPUT/result.json"]);
  const result = JSON.parse(execFileSync("python3", ["-c",
    "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read('job-1-OUTPUT/result.json').decode())", saved]));
  assert.equal(result.series[0].voxels, 8 * 48 * 48);
  await page.context().close();
});

test("a ZIP of a study is uploaded from a stream card, with progress, and becomes a job", async () => {
  const page = await logIn("ada", "admin-secret");
  const study = synth("upload-study", 6);
  const zip = path.join(work, "upload.zip");
  execFileSync("python3", ["-c",
    "import sys, os, zipfile\n" +
    "with zipfile.ZipFile(sys.argv[1], 'w') as z:\n" +
    "  for root, _, files in os.walk(sys.argv[2]):\n" +
    "    for f in files: z.write(os.path.join(root, f), f)", zip, study]);
  const before = (await (await page.request.get(base + "/api/v1/jobs")).json()).total;
  const card = page.locator("[data-testid=stream][data-ae=STATS]");
  await card.locator("[data-testid=upload-input]").setInputFiles(zip);
  await waitFor("the upload's answer", async () =>
    /6 instances in 1 studies stored/.test(await card.locator("[data-testid=upload-status]").innerText()));
  await shot(page, "upload");
  await waitFor("the uploaded study's job", async () =>
    (await (await page.request.get(base + "/api/v1/jobs")).json()).total === before + 1);
  // The job's events redraw the cards; the card still says what became of the upload.
  await waitFor("the uploaded study's job to end", async () =>
    (await (await page.request.get(base + "/api/v1/jobs?state=success")).json()).total === before + 1);
  await page.waitForTimeout(600); // past the page's 300 ms debounce of job events
  assert.match(await card.locator("[data-testid=upload-status]").innerText(),
    /6 instances in 1 studies stored/);
  // A folder: the page makes the ZIP itself, with a name that is not ASCII.
  const folder = synth("folder-study", 4);
  fs.renameSync(path.join(folder, "study1"), path.join(folder, "étude"));
  fs.writeFileSync(path.join(folder, "étude", "README.txt"), "not DICOM");
  await card.locator("[data-testid=upload-folder]").setInputFiles(folder);
  await waitFor("the folder's answer", async () =>
    /4 instances in 1 studies stored \(1 entries skipped\)/.test(await card.locator("[data-testid=upload-status]").innerText()));
  await shot(page, "upload-folder");
  await waitFor("the uploaded folder's job", async () =>
    (await (await page.request.get(base + "/api/v1/jobs")).json()).total === before + 2);
  await page.context().close();
});

test("a pending study is completed from the browser", async () => {
  const page = await logIn("ada", "admin-secret");
  storescu("HOLD", synth("held", 3));
  await page.goto(base + "/#/studies");
  const row = page.locator("[data-testid=study-row]");
  await row.waitFor();
  assert.match(await row.innerText(), /HOLD/);
  // Its quiet period is an hour: the countdown says so.
  assert.match(await row.locator("[data-testid=countdown]").innerText(), /^in (59|60)\.\d min$/);
  await shot(page, "studies");
  await row.locator("button").click();
  await page.waitForSelector("text=No study is arriving.");
  await page.goto(base + "/#/jobs");
  await page.waitForSelector("[data-testid=job-row] >> text=hold");
  await page.goto(base + "/#/sends");
  await page.waitForSelector("text=Nothing was sent yet.");
  await shot(page, "sends");
  await page.goto(base + "/#/status");
  await page.waitForSelector("[data-testid=ready] .ok");
  await shot(page, "status");
  await page.context().close();
});

test("routing with a mistake is refused at its place, then saved once fixed", async () => {
  const page = await logIn("ada", "admin-secret");
  await page.goto(base + "/#/routing");
  await page.waitForSelector("#routing-text");
  await page.fill("#routing-text", '{\n  "routing": [,]\n}');
  await page.click("#routing-save");
  const problems = page.locator("[data-testid=routing-problems] li");
  await problems.first().waitFor();
  assert.match(await problems.first().innerText(), /line 2, column 15/);
  await shot(page, "routing-error");
  assert.equal(fs.existsSync(path.join(work, "routing.json")), false);

  await page.fill("#routing-text", JSON.stringify({ routing: [{ send: [{ success: { IP: "127.0.0.1", PORT: "x" } }] }] }));
  await page.click("#routing-save");
  await waitFor("the place of the mistake", async () => /PORT/.test(await problems.first().innerText()));

  const good = JSON.stringify({ routing: [{ status: 0, send: [{ success: { IP: "127.0.0.1", PORT: 11112, AETitleTo: "PACS" } }] }] }, null, 2);
  await page.fill("#routing-text", good);
  await page.click("#routing-save");
  await page.waitForSelector("[data-testid=routing-saved]");
  assert.equal(fs.readFileSync(path.join(work, "routing.json"), "utf8"), good);
  await shot(page, "routing-saved");
  await page.context().close();
});

test("a viewer sees everything and may change nothing", async () => {
  const page = await logIn("vic", "viewer-secret");
  await page.goto(base + "/#/jobs/1");
  await page.waitForSelector("[data-testid=detail-state]");
  assert.equal(await page.isDisabled("#retry"), true);
  assert.equal(await page.isDisabled("#delete"), true);
  const refused = await page.evaluate(async () => {
    const r = await fetch("/api/v1/jobs/1", { method: "DELETE" });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(refused.status, 403);
  assert.match(refused.body.error, /user vic \(viewer\) may look but not change/);
  await page.goto(base + "/#/routing");
  await page.waitForSelector("#routing-text");
  assert.equal(await page.isDisabled("#routing-save"), true);
  await shot(page, "viewer");
  await page.context().close();
});

test("the status page lists the workers that joined, with their slots", async () => {
  const page = await logIn("vic", "viewer-secret");
  await page.goto(`${base}/#/status`);
  const row = page.locator("[data-testid=worker-row]", { hasText: "browser-worker" });
  await row.waitFor({ timeout: 15000 });
  const text = await row.innerText();
  assert.match(text, /joined/);
  assert.match(text, /0 \/ 1/);
  await shot(page, "status-workers");
  await page.context().close();
});

test("every page fits a 1400 px and a 760 px window without sideways scrolling", async () => {
  const page = await logIn("ada", "admin-secret");
  // Long values in the tables: a job of a sender with a long AE title.
  storescu("STATS", synth("wide-study", 2));
  await waitFor("a job to list", async () =>
    (await (await page.request.get(base + "/api/v1/jobs")).json()).total > 0);
  const pages = ["streams", "jobs", "jobs/1", "studies", "sends", "routing", "status"];
  for (const width of [1400, 760]) {
    await page.setViewportSize({ width, height: 900 });
    for (const name of pages) {
      await page.goto(`${base}/#/${name}`);
      await page.waitForSelector("main h1");
      await page.waitForTimeout(300); // let the page fill in its data
      const overflow = await page.evaluate(() =>
        document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `#/${name} at ${width} px is ${overflow} px wider than the window`);
      await shot(page, `fit-${width}-${name.replace("/", "-")}`);
    }
  }
  // A job that was deleted: a plain sentence, not an error.
  await page.goto(`${base}/#/jobs/999999`);
  await page.waitForSelector("[data-testid=job-gone]");
  await page.context().close();
});

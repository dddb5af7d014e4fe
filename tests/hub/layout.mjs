// The chat page's layout at phone and desktop sizes, in headless Chromium, with screenshots.
//
// usage: node layout.mjs --url http://127.0.0.1:PORT --shots DIR [--chromium PATH] [--label TEXT]
//
// For a phone (390×844, mobile viewport, touch) and a desktop (1280×800) it opens the chat
// page on a fresh channel and checks, from the rendered page (bounding boxes and computed
// styles, not the markup):
//   - the empty-state hint shows, inside the viewport, naming the channel;
//   - after own and others' messages (a 300-character word, a long URL, several lines):
//     the Send button, the message and nick inputs, the connection badge, the channel
//     picker and the message list lie inside the viewport, Send does not overlap the input,
//     Send is big enough to tap; the document and the message list do not scroll
//     sideways (scrollWidth <= width); every bubble and its text stay inside the list;
//   - own messages are set apart (other background, right-aligned), every message has a
//     time, the newest message is in view;
//   - the channel picker: an invalid name is explained and changes nothing; a valid one
//     switches channel, shows it in the URL (?channel=) and the empty hint; Back returns.
// Screenshots go to DIR as {phone,desktop}-{empty,chat,invalid-channel}.png (look at them).
// Prints PASS/FAIL lines; exits 1 if any failed.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { CHROMIUM_ARGS, Hub, Reporter, parseArgs, requireInterop } from "./lib.mjs";

const { chromium } = requireInterop("playwright-core");
const args = parseArgs();
const base = (args.url ?? "").replace(/\/$/, "");
const shots = args.shots;
const hub = new Hub(base);
const WAIT = 15000;
const r = new Reporter(args.label ?? "chat page layout");

if (!base.startsWith("http://127.0.0.1:") || !shots) {
  r.report(false, "arguments", "need --url http://127.0.0.1:PORT and --shots DIR");
  process.exit(1);
}
mkdirSync(shots, { recursive: true });

const SIZES = [
  { name: "phone", viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 },
  { name: "desktop", viewport: { width: 1280, height: 800 }, isMobile: false, hasTouch: false, deviceScaleFactor: 1 },
];

const LONG_WORD = "Pneumonoultramicroscopicsilicovolcanoconiosis".repeat(7).slice(0, 300);
const LONG_URL = `http://127.0.0.1:8080/api/channels/chat/messages?since=${"8812345:41".repeat(12)}&limit=100&token=${"eyJhbGciOiJIUzI1NiJ9".repeat(6)}`;

/** Rectangles and sizes the checks need, measured in the page. `vw`/`vh` are the
 *  viewport asked for: a mobile browser widens its layout viewport (innerWidth) to fit
 *  content that is too wide, so innerWidth alone would hide the very overflow looked for. */
function measure(page, size) {
  return page.evaluate(([vw, vh]) => {
    const box = (sel) => {
      const el = document.querySelector(sel);
      if (!el) return null;
      const b = el.getBoundingClientRect();
      const cs = getComputedStyle(el);
      return { left: b.left, top: b.top, right: b.right, bottom: b.bottom, width: b.width, height: b.height, visible: cs.display !== "none" && cs.visibility !== "hidden" && b.width > 0 && b.height > 0 };
    };
    const scroller = document.getElementById("scroller");
    const msgs = [...document.querySelectorAll("#log .msg")].map((li) => {
      const b = li.getBoundingClientRect();
      const text = li.querySelector(".text");
      return {
        left: b.left, right: b.right, top: b.top, bottom: b.bottom,
        own: li.classList.contains("own"),
        bg: getComputedStyle(li).backgroundColor,
        time: li.querySelector("time")?.textContent ?? null,
        at: li.querySelector("time")?.dateTime ?? null,
        source: li.querySelector("time")?.dataset.source ?? null,
        textOverflow: text ? text.scrollWidth - text.clientWidth : 0,
        text: text?.textContent ?? "",
      };
    });
    return {
      vw, vh, innerWidth: window.innerWidth,
      docScroll: document.documentElement.scrollWidth, bodyScroll: document.body.scrollWidth,
      scrollerScroll: scroller.scrollWidth, scrollerClient: scroller.clientWidth,
      boxes: Object.fromEntries(["#send", "#message", "#nick", "#transport", "#scroller", "#log", "#channel-input", "#empty", "#banner"].map((s) => [s, box(s)])),
      msgs,
    };
  }, [size.viewport.width, size.viewport.height]);
}

const inside = (b, m) => b && b.visible && b.left >= -0.5 && b.top >= -0.5 && b.right <= m.vw + 0.5 && b.bottom <= m.vh + 0.5;
const fmt = (b) => (b ? `${Math.round(b.left)},${Math.round(b.top)} ${Math.round(b.width)}×${Math.round(b.height)}${b.visible ? "" : " hidden"}` : "missing");
const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;

async function atSize(browser, size) {
  const tag = size.name;
  const context = await browser.newContext({ viewport: size.viewport, isMobile: size.isMobile, hasTouch: size.hasTouch, deviceScaleFactor: size.deviceScaleFactor });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  const channel = `layout-${tag}-${Date.now()}`;
  const me = `me-${tag}`;
  await page.goto(`${base}/?${new URLSearchParams({ channel, transport: "websocket", nick: me })}`, { timeout: WAIT });
  await page.waitForFunction(() => window.__switchboard?.client.state === "open", null, { timeout: WAIT });

  // (1) The empty channel.
  let m = await measure(page, size);
  const emptyText = await page.$eval("#empty", (e) => e.textContent);
  r.report(inside(m.boxes["#empty"], m) && emptyText.includes(channel), `${tag}: an empty channel shows the hint, in view, naming the channel`, `${fmt(m.boxes["#empty"])}; "${emptyText.slice(0, 60)}…"`);
  await page.screenshot({ path: path.join(shots, `${tag}-empty.png`) });

  // (2) A conversation: own messages typed in the page, others' over REST.
  const others = [
    { nick: "ann", text: "Hi! Is the deploy done?" },
    { nick: "ann", text: LONG_WORD },
    { nick: "bob", text: `Logs are here: ${LONG_URL}` },
    { nick: "bob", text: "line one\nline two\nline three" },
  ];
  const own = ["Yes, just now.", `And a long one: ${LONG_WORD}`];
  const started = Date.now();
  // A sender's own ts is the sender's say: this one claims 2001, the page shows the hub's.
  await hub.publish(channel, { ...others[0], ts: Date.UTC(2001, 0, 1) });
  await page.fill("#message", own[0]);
  await page.click("#send");
  for (const o of others.slice(1)) await hub.publish(channel, { ...o, ts: Date.now() });
  await hub.publishText(channel, "a plain REST text without a nick");
  await page.fill("#message", own[1]);
  await page.click("#send");
  const total = others.length + own.length + 1;
  await page.waitForFunction((n) => document.querySelectorAll("#log .msg").length >= n && document.querySelectorAll("#outbox li").length === 0, total, { timeout: WAIT });
  await page.waitForTimeout(300); // let the scroll to the bottom settle
  m = await measure(page, size);
  await page.screenshot({ path: path.join(shots, `${tag}-chat.png`) });

  r.report(m.docScroll <= m.vw && m.bodyScroll <= m.vw && m.innerWidth === m.vw, `${tag}: nothing scrolls sideways (document scrollWidth <= viewport width)`, `document ${m.docScroll}, body ${m.bodyScroll}, layout viewport ${m.innerWidth}, asked ${m.vw}`);
  r.report(m.scrollerScroll <= m.scrollerClient, `${tag}: the message list does not scroll sideways`, `${m.scrollerScroll} > ${m.scrollerClient}?`);
  for (const sel of ["#send", "#message", "#nick", "#transport", "#channel-input", "#scroller"]) {
    r.report(inside(m.boxes[sel], m), `${tag}: ${sel} is on screen, inside the ${m.vw}×${m.vh} viewport`, fmt(m.boxes[sel]));
  }
  const send = m.boxes["#send"], input = m.boxes["#message"];
  r.report(send && input && !overlap(send, input) && send.height >= 32 && send.width >= 44 && input.width >= 120, `${tag}: Send is tappable and does not cover the message input`, `send ${fmt(send)}, input ${fmt(input)}`);
  const sc = m.boxes["#scroller"];
  const out = m.msgs.filter((b) => b.left < sc.left - 0.5 || b.right > sc.right + 0.5 || b.textOverflow > 0);
  r.report(m.msgs.length === total && out.length === 0, `${tag}: every bubble (long word, long URL included) wraps inside the list`, out.length ? out.map((b) => `${Math.round(b.left)}-${Math.round(b.right)} overflow ${b.textOverflow}: ${b.text.slice(0, 30)}`).join("; ") : `${m.msgs.length} bubbles`);
  const ownB = m.msgs.filter((b) => b.own), otherB = m.msgs.filter((b) => !b.own);
  // Against the message column (#log: centred, at most 52rem wide on a desktop).
  const col = m.boxes["#log"];
  const ownRight = ownB.every((b) => col.right - b.right < 2), otherLeft = otherB.every((b) => b.left - col.left < 2);
  r.report(
    ownB.length === own.length && otherB.length === total - own.length && ownB.every((b) => b.bg !== otherB[0].bg) && ownRight && otherLeft,
    `${tag}: own messages are set apart (their own background, on the right; others on the left)`,
    `own ${ownB.length} ${ownB[0]?.bg}, others ${otherB.length} ${otherB[0]?.bg}`,
  );
  r.report(m.msgs.every((b) => /^\d{1,2}[:.]\d{2}/.test(b.time ?? "")), `${tag}: every message shows its time`, m.msgs.map((b) => b.time).join(" "));
  const hubTime = (b) => b.source === "hub" && Date.parse(b.at) >= started - 5000 && Date.parse(b.at) <= Date.now() + 5000;
  r.report(m.msgs.every(hubTime), `${tag}: every time shown is the hub's (a sender's faked 2001 ts is not shown)`, m.msgs.map((b) => `${b.source} ${b.at}`).join(", "));
  // After a reload the same messages come from history: the same times.
  await page.reload({ timeout: WAIT });
  await page.waitForFunction((n) => document.querySelectorAll("#log .msg").length >= n, total, { timeout: WAIT });
  const again = await measure(page, size);
  r.report(
    JSON.stringify(again.msgs.map((b) => b.at)) === JSON.stringify(m.msgs.map((b) => b.at)) && again.msgs.every(hubTime),
    `${tag}: after a reload, history shows each message with the same hub time`,
    again.msgs.map((b) => `${b.source} ${b.at}`).join(", "),
  );
  const last = m.msgs.at(-1);
  r.report(last && last.bottom <= sc.bottom + 1 && last.top >= sc.top - 1, `${tag}: the newest message is in view`, last ? `${Math.round(last.top)}-${Math.round(last.bottom)} in ${Math.round(sc.top)}-${Math.round(sc.bottom)}` : "none");
  r.report(errors.length === 0, `${tag}: no page errors`, errors.join("; "));

  // (3) The channel picker.
  await page.fill("#channel-input", "no spaces allowed!");
  await page.press("#channel-input", "Enter");
  const bad = await page.evaluate(() => ({ shown: !document.getElementById("channel-error").hidden, text: document.getElementById("channel-error").textContent, url: location.search, ch: window.__switchboard.channel }));
  m = await measure(page, size);
  r.report(bad.shown && /not a valid channel name/.test(bad.text) && bad.url.includes(`channel=${channel}`) && bad.ch === channel && m.docScroll <= m.vw,
    `${tag}: an invalid channel name is explained and changes nothing`, `"${bad.text}" ${bad.url}`);
  await page.screenshot({ path: path.join(shots, `${tag}-invalid-channel.png`) });
  const other = `${channel}-b`;
  await page.fill("#channel-input", other);
  await page.press("#channel-input", "Enter");
  await page.waitForFunction((c) => window.__switchboard.channel === c && window.__switchboard.client.state === "open", other, { timeout: WAIT });
  const switched = await page.evaluate(() => ({ url: new URLSearchParams(location.search).get("channel"), msgs: document.querySelectorAll("#log .msg").length, empty: !document.getElementById("empty").hidden, err: !document.getElementById("channel-error").hidden }));
  r.report(switched.url === other && switched.msgs === 0 && switched.empty && !switched.err, `${tag}: the picker switches channel, ?channel= follows, the new channel is empty`, JSON.stringify(switched));
  await page.fill("#message", "hello other channel");
  await page.click("#send");
  const ok = await page.waitForFunction(() => document.querySelectorAll("#log .msg").length === 1, null, { timeout: WAIT }).then(() => true, () => false);
  const hist = await hub.history(other, "?since=0");
  r.report(ok && hist.messages.length === 1 && hist.messages[0].data.text === "hello other channel", `${tag}: a message sent after switching goes to the new channel`, `${hist.messages.length} there`);
  await page.goBack();
  await page.waitForFunction(([c, n]) => window.__switchboard.channel === c && document.querySelectorAll("#log .msg").length === n, [channel, total], { timeout: WAIT })
    .then(() => r.report(true, `${tag}: Back returns to the first channel with its ${total} messages`), (e) => r.report(false, `${tag}: Back returns to the first channel`, e.message.split("\n")[0]));
  await context.close();
}

let browser;
try {
  browser = await chromium.launch({ executablePath: args.chromium ?? "/usr/bin/chromium", args: CHROMIUM_ARGS, timeout: 60000 });
  for (const size of SIZES) {
    try {
      await atSize(browser, size);
    } catch (e) {
      r.report(false, `${size.name}: aborted`, String(e.message ?? e).split("\n")[0]);
    }
  }
} catch (e) {
  r.report(false, "browser run", String(e.message ?? e).split("\n")[0]);
} finally {
  if (browser) await browser.close().catch(() => {});
}
console.log(`screenshots: ${shots}`);
process.exit(r.failed ? 1 : 0);

/**
 * WALE_BACKUP_RETAIN against a burst of /backup-push calls, with real WAL-E
 * on PostgreSQL 14 and a file:// store: the backups the operator's window
 * needs stay (src/backups/retention.ts). The older backups are aged by setting the
 * time of their sentinel files, which is what WAL-E's file backend lists.
 */
import { expect, test } from "bun:test";
import { utimesSync } from "node:fs";
import { join } from "node:path";
import { makeStore, startArchivingSource, useScope } from "../support/harness.ts";

const scope = useScope();
const DAY_S = 24 * 60 * 60;

test("a burst of backups with WALE_BACKUP_RETAIN=2 deletes none of the backups of the last day", async () => {
  const store = makeStore(scope);
  // No schedule: a backup counts once a day (the interval without a schedule), so the window is one day.
  const { url } = await startArchivingSource(scope, store, 14, { env: { WALE_BACKUP_RETAIN: "2" } });
  const backup = async () => {
    const response = await fetch(`${url}/backup-push`);
    expect([response.status, (await response.text()).slice(0, 15)]).toEqual([200, "backup complete"]);
  };
  const list = async () =>
    ((await (await fetch(`${url}/backup-list`)).json()) as Array<{ name: string }>).map((b) => b.name).sort();
  const age = (name: string, seconds: number) => {
    const time = Date.now() / 1000 - seconds;
    utimesSync(join(store.dir, "basebackups_005", `${name}_backup_stop_sentinel.json`), time, time);
  };

  // Two backups: one from three days ago, one from twelve hours ago.
  await backup();
  await backup();
  const [old, recent] = (await list()) as [string, string];
  age(old, 3 * DAY_S);
  age(recent, DAY_S / 2);
  // Then a burst of two. WAL-E's own `delete retain 2` would keep only these.
  await backup();
  await backup();
  // (Names sort in the order the backups were taken.)
  const after = await list();
  expect(after).toHaveLength(4);
  // Recovery to any moment of the last day needs the one from three days ago: both stay.
  expect(after.slice(0, 2)).toEqual([old, recent]);
}, 240_000);

// The extension manifest against the code: every contributed command is registered, has a title and a category, and an
// icon wherever a menu shows it; every setting is described; every walkthrough step's page exists, its links run
// contributed commands, and each completion event is one the code can fire.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const REPO = path.resolve(__dirname, '..', '..', '..');

interface Manifest {
  contributes: {
    commands: { command: string; title?: string; category?: string; icon?: string }[];
    menus: Record<string, { command: string; when?: string }[]>;
    views: Record<string, { id: string }[]>;
    configuration: { properties: Record<string, { description?: string; markdownDescription?: string }> };
    walkthroughs: { id: string; steps: { id: string; description: string; media: { markdown?: string }; completionEvents?: string[] }[] }[];
  };
}

const manifest = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as Manifest;
const contributed = new Map(manifest.contributes.commands.map((c) => [c.command, c]));
const views = new Set(Object.values(manifest.contributes.views).flatMap((list) => list.map((view) => view.id)));

function sources(dir: string): string {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.ts'))
    .map((name) => fs.readFileSync(path.join(dir, name), 'utf8'))
    .join('\n');
}
const extensionSource = sources(path.join(REPO, 'extension'));

/** Command ids the extension registers: registerCommand(CONSTANT or 'literal'), constants resolved by their definition. */
function registeredCommands(): Set<string> {
  const constants = new Map([...extensionSource.matchAll(/const ([A-Z_]+_COMMAND) = '([^']+)'/g)].map((m) => [m[1]!, m[2]!]));
  const ids = new Set<string>();
  for (const match of extensionSource.matchAll(/registerCommand\(\s*(?:'([^']+)'|([A-Z_]+))/g)) {
    const id = match[1] ?? constants.get(match[2]!);
    assert.ok(id, `registerCommand(${match[2]}) uses a constant with no definition`);
    ids.add(id);
  }
  return ids;
}

test('every contributed command is registered by the extension, and every registered one is contributed', () => {
  const registered = registeredCommands();
  assert.deepEqual([...contributed.keys()].sort(), [...registered].sort());
});

test('every command has a title and the QuantLens category; in a visible menu, an icon too', () => {
  for (const command of contributed.values()) {
    assert.ok(command.title, `${command.command} has no title`);
    assert.equal(command.category, 'QuantLens', `${command.command}'s category`);
  }
  for (const [menu, items] of Object.entries(manifest.contributes.menus)) {
    for (const item of items) {
      assert.ok(contributed.has(item.command), `${menu} shows ${item.command}, which is not contributed`);
      if (item.when === 'false') continue;
      assert.match(contributed.get(item.command)!.icon ?? '', /^\$\([a-z-]+\)$/, `${item.command} in ${menu} has no codicon`);
    }
  }
});

test('every setting has a description', () => {
  for (const [key, property] of Object.entries(manifest.contributes.configuration.properties)) {
    assert.ok((property.description ?? property.markdownDescription ?? '').length > 20, `${key} has no description`);
  }
});

test('walkthrough steps: pages exist, links run contributed commands, completion events are ones the code fires', () => {
  const milestones = new Set([...extensionSource.matchAll(/reachedMilestone\('([a-z]+)'\)/g)].map((m) => m[1]!));
  assert.ok(milestones.size > 0, 'no reachedMilestone calls found');
  for (const walkthrough of manifest.contributes.walkthroughs) {
    for (const step of walkthrough.steps) {
      const where = `${walkthrough.id}#${step.id}`;
      assert.ok(step.media.markdown && fs.existsSync(path.join(REPO, step.media.markdown)), `${where}: page ${step.media.markdown} is missing`);
      for (const [, link] of step.description.matchAll(/\]\(command:([^)?]+)(?:\?[^)]*)?\)/g)) {
        const command = link!.replace(/^toSide:/, '');
        const isViewFocus = command.endsWith('.focus') && views.has(command.slice(0, -'.focus'.length));
        assert.ok(contributed.has(command) || isViewFocus, `${where}: link to ${command}, which is neither a contributed command nor a view`);
      }
      assert.ok(step.completionEvents?.length, `${where} has no completion event: it would complete on being opened`);
      for (const event of step.completionEvents ?? []) {
        const [kind, value] = [event.slice(0, event.indexOf(':')), event.slice(event.indexOf(':') + 1)];
        if (kind === 'onCommand') assert.ok(contributed.has(value), `${where}: ${event} names no contributed command`);
        else if (kind === 'onView') assert.ok(views.has(value), `${where}: ${event} names no contributed view`);
        else if (kind === 'onContext') {
          const key = /^quantlens\.walkthrough\.([a-z]+)$/.exec(value)?.[1];
          assert.ok(key && milestones.has(key), `${where}: ${event} is no context key the extension sets`);
        } else assert.fail(`${where}: unexpected completion event ${event}`);
      }
    }
  }
});

/**
 * The commands for the paper's other parts (issue 8): `musc tokens`, `musc rscin`, `musc ablate`.
 */
import type { Command } from 'commander';
import { tokensCommand } from './tokens.js';
import { rscinCommand } from './rscin.js';
import { ablateCommand } from './ablate.js';

export function addPaperCommands(program: Command): void {
  program.addCommand(tokensCommand());
  program.addCommand(rscinCommand());
  program.addCommand(ablateCommand());
}

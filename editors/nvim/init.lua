-- A minimal standalone config to try codeexec-lsp (and the one the tests run):
--
--   nvim -u editors/nvim/init.lua some_file.py
--
-- `codeexec-lsp` must be on PATH (e.g. `pipx install .` in the clone, or an activated
-- virtualenv with the package installed); if it is not, opening a Python file says so.
-- Select lines, then `gra` (code actions) -> "Run selection", or `<leader>er`;
-- `K` on a run line shows the output; see editors/nvim/README.md.

local here = vim.fn.fnamemodify(debug.getinfo(1, 'S').source:sub(2), ':p:h')

-- This directory is a runtimepath plugin: lsp/codeexec.lua (the server config) and
-- plugin/codeexec.lua (commands and keymaps, sourced when plugins load, after this file).
vim.opt.runtimepath:prepend(here)

-- Show the error message next to the line, not only as an underline and a sign.
vim.diagnostic.config({ virtual_text = true })

vim.lsp.enable('codeexec')

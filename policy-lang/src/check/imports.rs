//! Following imports: the order files apply in, cycles, missing files and imported tenants.

use super::*;
use crate::diag::Code;

impl Cx<'_> {
    /// Files in the order they apply: imports depth first, each once, `root` last.
    pub(super) fn import_order(&mut self, root: FileId) -> Vec<FileId> {
        let mut order = Vec::new();
        let mut done = BTreeSet::new();
        let mut stack = Vec::new();
        self.visit(root, &mut stack, &mut done, &mut order);
        order
    }

    pub(super) fn visit(
        &mut self,
        file: FileId,
        stack: &mut Vec<FileId>,
        done: &mut BTreeSet<FileId>,
        order: &mut Vec<FileId>,
    ) {
        if !done.insert(file) {
            return;
        }
        stack.push(file);
        let imports: Vec<Spanned<String>> = match &self.ws.parsed(file).ast {
            Some(ast) => ast
                .items
                .iter()
                .filter_map(|i| match &i.node {
                    ast::Item::Import(p) => Some(p.clone()),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        for import in imports {
            let path = self.ws.resolve_import(file, &import.node);
            let id = match self.ws.load(&path) {
                Ok(id) => id,
                Err(e) => {
                    self.diags.push(
                        Diagnostic::error(
                            Code::ImportNotFound,
                            file,
                            import.span,
                            format!("cannot read imported file `{}`: {}", import.node, io_reason(&e)),
                        )
                        .with_label("imported here")
                        .with_help("import paths are relative to the importing file; check the path and the file's name"),
                    );
                    continue;
                }
            };
            if let Some(pos) = stack.iter().position(|f| *f == id) {
                let mut cycle: Vec<String> = stack[pos..]
                    .iter()
                    .map(|f| format!("`{}`", self.ws.sources.get(*f).name))
                    .collect();
                cycle.push(format!("`{}`", self.ws.sources.get(id).name));
                self.diags.push(
                    Diagnostic::error(Code::ImportCycle, file, import.span, format!("import cycle: {}", cycle.join(" → ")))
                        .with_label("this import closes the cycle")
                        .with_help("a base may import other bases, but never one that (indirectly) imports it; move the shared part into a third base"),
                );
                continue;
            }
            if let Some(kind) = self
                .ws
                .parsed(id)
                .ast
                .as_ref()
                .map(|a| a.header.node.kind.node)
                && kind == FileKind::Tenant
            {
                self.diags.push(
                    Diagnostic::error(
                        Code::ImportTenant,
                        file,
                        import.span,
                        format!("`{}` is a tenant policy and cannot be imported", import.node),
                    )
                    .with_label("imported here")
                    .with_help("only files that start with `base NAME` can be imported; move the shared rules into a base"),
                );
                continue;
            }
            self.visit(id, stack, done, order);
        }
        stack.pop();
        order.push(file);
    }
}

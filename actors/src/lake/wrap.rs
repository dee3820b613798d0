//! Catalogs that wrap another: [`PinnedCatalog`](super::PinnedCatalog) for the writers, the
//! query server's reader (`server/src/flight/tables.rs`). Each changes how tables load or
//! commit; everything about namespaces, listing, creating and checking tables passes through.

/// `impl iceberg::Catalog for $wrapper` (a struct with an `inner: Arc<dyn Catalog>`): the
/// namespace methods, `list_tables`, `create_table` and `table_exists` go to `inner`; the
/// table methods (`load_table`, `drop_table`, `purge_table`, `rename_table`,
/// `register_table`, `update_table`) are the wrapper's own, written in the braces.
#[macro_export]
macro_rules! wrap_catalog {
    ($wrapper:ty { $($own:tt)* }) => {
        #[::async_trait::async_trait]
        impl ::iceberg::Catalog for $wrapper {
            async fn list_namespaces(
                &self,
                parent: Option<&::iceberg::NamespaceIdent>,
            ) -> ::iceberg::Result<Vec<::iceberg::NamespaceIdent>> {
                self.inner.list_namespaces(parent).await
            }
            async fn create_namespace(
                &self,
                namespace: &::iceberg::NamespaceIdent,
                properties: ::std::collections::HashMap<String, String>,
            ) -> ::iceberg::Result<::iceberg::Namespace> {
                self.inner.create_namespace(namespace, properties).await
            }
            async fn get_namespace(
                &self,
                namespace: &::iceberg::NamespaceIdent,
            ) -> ::iceberg::Result<::iceberg::Namespace> {
                self.inner.get_namespace(namespace).await
            }
            async fn namespace_exists(
                &self,
                namespace: &::iceberg::NamespaceIdent,
            ) -> ::iceberg::Result<bool> {
                self.inner.namespace_exists(namespace).await
            }
            async fn update_namespace(
                &self,
                namespace: &::iceberg::NamespaceIdent,
                properties: ::std::collections::HashMap<String, String>,
            ) -> ::iceberg::Result<()> {
                self.inner.update_namespace(namespace, properties).await
            }
            async fn drop_namespace(
                &self,
                namespace: &::iceberg::NamespaceIdent,
            ) -> ::iceberg::Result<()> {
                self.inner.drop_namespace(namespace).await
            }
            async fn list_tables(
                &self,
                namespace: &::iceberg::NamespaceIdent,
            ) -> ::iceberg::Result<Vec<::iceberg::TableIdent>> {
                self.inner.list_tables(namespace).await
            }
            async fn create_table(
                &self,
                namespace: &::iceberg::NamespaceIdent,
                creation: ::iceberg::TableCreation,
            ) -> ::iceberg::Result<::iceberg::table::Table> {
                self.inner.create_table(namespace, creation).await
            }
            async fn table_exists(&self, ident: &::iceberg::TableIdent) -> ::iceberg::Result<bool> {
                self.inner.table_exists(ident).await
            }
            $($own)*
        }
    };
}
